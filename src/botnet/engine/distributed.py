"""Process-group set-up for torchrun: gloo on CPU, nccl on GPU; one process is a world of one.

torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; multi-node launches use torchrun's own rendezvous
(``--nnodes``, ``--rdzv-backend c10d``, ``--rdzv-endpoint HOST:PORT``) and nothing here changes for them.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(pref: str, local_rank: int = 0) -> torch.device:
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision of a run: ``amp`` "none", "bf16" or "fp16" on ``device``."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def setup(device_pref: str = "auto", timeout_s: float = 1800) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_pref, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local_rank, device)


def local_world_size() -> int:
    """Training processes on this machine (torchrun's ``LOCAL_WORLD_SIZE``)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def auto_workers(device: torch.device, local_world_size: int = 1) -> int:
    """Data-loading processes per training process when not given.

    On a CPU of <= 4 cores, loading in the main process is fastest: worker processes would compete with the
    compute threads for the same cores (``benchmarks/train_speed.py`` measures 0 against 2 workers). Otherwise the
    cores left after one per training process, up to 8.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu" and cores <= 4:
        return 0
    return max(0, min(8, cores // max(local_world_size, 1) - 1))


def device_memory(device: torch.device) -> int:
    """Bytes of memory on ``device``: the GPU's own, or the machine's physical memory for the CPU (16 GiB when the
    system does not say)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 16 * 2**30


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float] | torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a vector of float64 values over all processes (float64 keeps counts exact)."""
    t = torch.as_tensor(values, dtype=torch.float64)
    if info.distributed:
        device = info.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = t.to(device)
        dist.all_reduce(t)
        t = t.cpu()
    return t


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
