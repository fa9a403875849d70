"""The time estimate printed before the first epoch times a copy: the run itself is left exactly as it was."""

from __future__ import annotations

import torch

from botnet.classification.config import TrainConfig
from botnet.classification.trainer import ClassificationTrainer
from botnet.engine.config import build_config
from botnet.engine.distributed import DistInfo
from botnet.engine.estimate import duration, estimate_line, time_one_step


def test_estimate_leaves_weights_buffers_and_random_state_alone(tmp_path):
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    cfg = build_config(
        config_cls=TrainConfig, shapes_train=64, shapes_val=16, img_size=32, batch_size=16, epochs=3, workers=0
    ).replace(output=str(tmp_path / "run"))
    with ClassificationTrainer(cfg, info, resume=False, overwrite=False) as trainer:
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}  # weights and BN statistics
        torch.manual_seed(123)
        rng = torch.get_rng_state()
        line, seconds = estimate_line(trainer, time_one_step(trainer))
        assert torch.equal(torch.get_rng_state(), rng)
        after = trainer.model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert trainer.net is trainer.model and not any(p.grad is not None for p in trainer.model.parameters())
        # 3 epochs of 4 steps, each validated.
        assert line.startswith("time estimate: about ") and "12 optimizer steps" in line and "3 validation(s)" in line
        assert seconds > 0


def test_duration_reads_naturally():
    assert [duration(s) for s in (0.4, 42, 95, 3600 + 7 * 60 + 20)] == ["0 s", "42 s", "1 min 35 s", "1 h 7 min"]
