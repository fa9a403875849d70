"""The training process keeps freed heap memory: fewer page faults per step, and the user's malloc settings stand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from botnet.engine import heap

STEPS = """
import resource, sys, torch
from botnet.engine.heap import keep_freed_memory
from botnet.models import create_model
print(keep_freed_memory() if sys.argv[1] == "keep" else None)
torch.manual_seed(0)
model = create_model("botnet_tiny", num_classes=10, img_size=64)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(64, 3, 64, 64), torch.arange(64) % 10
def step():
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    opt.zero_grad()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 8)
"""


def _faults_per_step(mode: str) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied, float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_training_steps_stop_faulting_in_fresh_pages() -> None:
    """The same training steps in fresh processes: with the thresholds fixed, a fraction of the page faults."""
    applied, kept = _faults_per_step("keep")
    _, plain = _faults_per_step("plain")
    assert applied == "True"
    assert kept < plain / 4, (kept, plain)


@pytest.mark.parametrize("env", ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "LD_PRELOAD"])
def test_the_users_malloc_settings_stand(monkeypatch, env: str) -> None:
    calls = []
    monkeypatch.setattr(heap, "_done", False)
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda *a: calls.append(a))
    monkeypatch.setenv(env, "/usr/lib/libjemalloc.so.2" if env == "LD_PRELOAD" else "1000000")
    assert heap.keep_freed_memory() is False
    assert calls == []  # the C library was not even opened
