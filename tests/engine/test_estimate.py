"""The time estimate printed before the first epoch times a copy: the run itself is left exactly as it was."""

from __future__ import annotations

import pytest
import torch

from botnet.classification.config import TrainConfig
from botnet.classification.trainer import ClassificationTrainer
from botnet.engine.config import build_config
from botnet.engine.distributed import DistInfo
from botnet.engine.estimate import (
    StepCost,
    against_bound,
    duration,
    epochs_within,
    estimate_line,
    time_one_step,
    validations,
)


def test_estimate_leaves_weights_buffers_and_random_state_alone(tmp_path):
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    cfg = build_config(
        config_cls=TrainConfig, shapes_train=64, shapes_val=16, image_size=32, batch_size=16, epochs=3, workers=0
    ).replace(output=str(tmp_path / "run"))
    with ClassificationTrainer(cfg, info, resume=False, overwrite=False) as trainer:
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}  # weights and BN statistics
        torch.manual_seed(123)
        rng = torch.get_rng_state()
        kept = trainer.model
        assert time_one_step(trainer).validation is None  # the estimate line alone times the step
        timed = time_one_step(trainer, epoch=True)  # a --time plan: the epoch's checkpoint and validation too
        line, seconds = estimate_line(trainer, timed)
        assert torch.equal(torch.get_rng_state(), rng)
        # An epoch's checkpoint was written (and timed) in a scratch folder of the run, which is gone; the one-batch
        # validation was timed whole, through the task's own validation.
        assert timed.epoch_end > 0 and not any(p.name.startswith(".time.") for p in (tmp_path / "run").iterdir())
        assert timed.validation > 0 and trainer.model is kept and trainer.net is kept
        after = trainer.model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert trainer.net is trainer.model and not any(p.grad is not None for p in trainer.model.parameters())
        # 3 epochs of 4 steps, each validated.
        assert line.startswith("time estimate: about ") and "12 optimizer steps" in line and "3 validation(s)" in line
        assert seconds > 0


def test_duration_reads_naturally():
    assert [duration(s) for s in (0.4, 42, 95, 3600 + 7 * 60 + 20)] == ["0 s", "42 s", "1 min 35 s", "1 h 7 min"]
    assert against_bound(583, 10) == "within --time 10 min" and against_bound(88, 1) == "over --time 1 min by 28 s"


def test_epochs_within_a_time_bound_from_a_fake_step_time():
    # 0.5 s a step, 10 steps an epoch, a 2 s validation after every second epoch and after the last.
    cost = StepCost(step=0.5, validation=2.0)
    assert validations(0, 5, 2) == 3 and validations(2, 5, 1) == 3
    # 4 epochs: 40 steps (20 s) + validations after epochs 2 and 4 (4 s) = 24 s; 5 epochs: 25 s + 6 s = 31 s.
    assert cost.run_seconds(steps=40, validations=validations(0, 4, 2)) == 24.0
    # Each epoch's checkpoint counts too: 1 s each makes 4 epochs 28 s and 5 epochs 36 s.
    with_checkpoints = StepCost(step=0.5, validation=2.0, epoch_end=1.0)
    assert epochs_within(31.0, with_checkpoints, steps_per_epoch=10, eval_interval=2, most=100) == 4
    assert epochs_within(30.0, cost, steps_per_epoch=10, eval_interval=2, most=100) == 4
    assert epochs_within(31.0, cost, steps_per_epoch=10, eval_interval=2, most=100) == 5
    assert epochs_within(31.0, cost, steps_per_epoch=10, eval_interval=2, most=3) == 3  # never more than planned
    assert epochs_within(6.9, cost, steps_per_epoch=10, eval_interval=2, most=100) == 0  # not one epoch (5 s + 2 s)


def test_time_bound_shortens_an_auto_schedule_and_records_why(tmp_path, monkeypatch):
    from botnet.engine import loop

    monkeypatch.setattr(loop, "time_one_step", lambda trainer, epoch=False: (5.0, 0.0, 0.0, None))  # a fake 5 s step
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    base = dict(shapes_train=64, shapes_val=16, image_size=32, batch_size=16, workers=0)
    # 4 steps an epoch (20 s) and one validation batch (5 / 3 s): 2 epochs fit 90% of a minute.
    cfg = build_config(config_cls=TrainConfig, **base, time=1.0).replace(output=str(tmp_path / "run"))
    with ClassificationTrainer(cfg, info, resume=False, overwrite=False) as trainer:
        assert trainer.cfg.epochs == 2 and trainer.cfg.warmup_epochs == pytest.approx(0.4)  # 20% of 2 epochs
        reason = trainer.auto_reasons["epochs"]
        assert reason.startswith("2 of the rule's ") and "to end within --time 1 min (5 s a step, timed)" in reason
        assert trainer.scheduler._milestones == [2]  # built for the new length: a 2-step warm-up (0.4 x 4 steps)
    assert "epochs: 2  # auto: 2 of the rule's" in (tmp_path / "run" / "config.yaml").read_text()
    # Given epochs stand; a bound too short for one epoch is refused with the minimum, leaving no directory.
    cfg = build_config(config_cls=TrainConfig, **base, time=1.0, epochs=5).replace(output=str(tmp_path / "given"))
    with ClassificationTrainer(cfg, info, resume=False, overwrite=False) as trainer:
        assert trainer.cfg.epochs == 5
    cfg = build_config(config_cls=TrainConfig, **base, time=0.2).replace(output=str(tmp_path / "short"))
    with pytest.raises(ValueError, match=r"--time 0.2 is too short for one epoch .* give --time 1 or more"):
        ClassificationTrainer(cfg, info, resume=False, overwrite=False)
    assert not (tmp_path / "short").exists()
