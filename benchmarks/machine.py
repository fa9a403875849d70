"""What the benchmarks share: the machine they ran on, the GEMM yardstick, child processes, result files."""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def machine_info(**versions: str) -> dict[str, Any]:
    """Python / torch versions, the CPU, thread count and CUDA availability, plus ``versions`` of other packages."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        **versions,
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def gemm_peak(n: int = 2048, samples: int = 10) -> dict[str, Any]:
    """This machine's practical fp32 GEMM throughput: ``torch.mm`` of two n x n matrices, median of ``samples``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    return {"n": n, "seconds": seconds, "times": times, "gflops": 2 * n**3 / seconds / 1e9}


def run_child(script: str | Path, args: list[object]) -> dict[str, Any]:
    """Run ``script --child ARGS`` in a fresh interpreter (its own memory high-water mark); its last stdout line is a
    JSON report."""
    cmd = [sys.executable, str(Path(script).resolve()), "--child", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_results(stem: Path, record: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Write ``record`` as ``stem.json`` and ``rows`` as ``stem.csv`` (columns: every key of any row)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".csv")
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {json_path} and {csv_path}")
