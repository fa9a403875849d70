"""The training process asks glibc to keep freed heap memory, and leaves the user's malloc settings alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from botnet.engine import heap


class _FakeLibc:
    """Records mallopt calls (a function, so that ctypes-style argtypes can be set on it)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

        def mallopt(param: int, value: int) -> int:
            self.calls.append((param, value))
            return 1

        self.mallopt = mallopt


def test_glibc_gets_fixed_mmap_and_trim_thresholds(monkeypatch) -> None:
    """M_MMAP_THRESHOLD (-3) at glibc's largest, 32 MiB, and M_TRIM_THRESHOLD (-1) at 2 GiB - 1, once per process."""
    libc = _FakeLibc()
    monkeypatch.setattr(heap, "_done", False)
    monkeypatch.setattr(heap.sys, "platform", "linux")
    for name in (*heap._ENV, "LD_PRELOAD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda *a: libc)
    assert heap.keep_freed_memory() is True
    assert heap.keep_freed_memory() is True
    assert libc.calls == [(-3, 32 * 1024 * 1024), (-1, 2**31 - 1)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_this_systems_malloc_takes_them() -> None:
    code = "from botnet.engine.heap import keep_freed_memory; print(keep_freed_memory())"
    env = {k: v for k, v in os.environ.items() if k not in (*heap._ENV, "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "True"  # mallopt accepted both values


@pytest.mark.parametrize("env", ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "LD_PRELOAD"])
def test_the_users_malloc_settings_stand(monkeypatch, env: str) -> None:
    calls = []
    monkeypatch.setattr(heap, "_done", False)
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda *a: calls.append(a))
    monkeypatch.setenv(env, "/usr/lib/libjemalloc.so.2" if env == "LD_PRELOAD" else "1000000")
    assert heap.keep_freed_memory() is False
    assert calls == []  # the C library was not even opened


def test_another_c_library_is_left_alone(monkeypatch) -> None:
    """No mallopt (musl): nothing set, no error."""

    def no_libc(*_args):
        raise OSError("libc.so.6: cannot open shared object file")

    monkeypatch.setattr(heap, "_done", False)
    monkeypatch.setattr(heap.sys, "platform", "linux")
    for name in (*heap._ENV, "LD_PRELOAD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(heap.ctypes, "CDLL", no_libc)
    assert heap.keep_freed_memory() is False
