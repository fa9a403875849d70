"""One loader per run: worker processes kept between epochs, and every epoch's batches as a fresh loader gives them."""

from __future__ import annotations

import os
from types import SimpleNamespace

import torch
from torch.utils.data import Dataset

from botnet.engine.data import TrainLoader, train_loader
from botnet.engine.distributed import DistInfo

CPU = DistInfo(0, 1, 0, torch.device("cpu"))


class _Draws(Dataset):
    """Sample i: a random draw (seeded per sample by SeededDataset) and the id of the process that made it."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int):
        return torch.stack([torch.rand(()), torch.tensor(float(os.getpid()))]), i


def _epoch(loader) -> tuple[torch.Tensor, torch.Tensor, set[int]]:
    batches = list(loader)
    values = torch.cat([x[:, 0] for x, _, _ in batches])
    return values, torch.cat([t for _, t, _ in batches]), {int(p) for x, _, _ in batches for p in x[:, 1]}


def test_workers_serve_every_epoch_with_the_draws_of_a_fresh_loader() -> None:
    cfg = SimpleNamespace(seed=3, batch_size=4, workers=2)
    run = TrainLoader(_Draws(), cfg, CPU)
    try:
        seen = []
        for epoch in (0, 1, 2):
            values, order, pids = _epoch(run.epoch(epoch))
            fresh_values, fresh_order, _ = _epoch(
                train_loader(_Draws(), SimpleNamespace(**{**vars(cfg), "workers": 0}), CPU, epoch)
            )
            assert torch.equal(order, fresh_order) and torch.equal(values, fresh_values), epoch
            assert os.getpid() not in pids  # made in the workers
            seen.append(pids)
        assert seen[0] == seen[1] == seen[2]  # the same worker processes, not new ones per epoch
        assert not torch.equal(_epoch(run.epoch(1))[0], _epoch(run.epoch(2))[0])  # and the epoch reaches them

        values, order, _ = _epoch(run.epoch(1, skip_batches=2))  # resuming after 2 batches of epoch 1
        full_values, full_order, _ = _epoch(run.epoch(1))
        assert torch.equal(order, full_order[8:]) and torch.equal(values, full_values[8:])

        abandoned = iter(run.epoch(0))
        next(abandoned)  # a loop left mid-epoch (as the time estimate does): the next epoch starts clean
        assert torch.equal(_epoch(run.epoch(2))[0], _epoch(run.epoch(2))[0])
    finally:
        run.close()
    assert run.loader is None
