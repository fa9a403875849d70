"""Whole-model cost of the attention: botnet50 against resnet50 (both ours) and torchvision's resnet50, fp32 on CPU.

What is measured
    * Inference (``model.eval()``, ``torch.no_grad()``) at 224 px (batch 8) and 1024 px (batch 1): median seconds per
      batch over ``--steps`` timed calls (default 5) after one warm-up call. The attention backend is the default
      "auto" (at 1024 px the first c5 block attends over 64 x 64 positions).
    * Achieved throughput: the model's multiply-adds (``botnet.models.count_macs``; torchvision's resnet50 has the
      same as ours) x 2 / median time, and its fraction of the machine's fp32 GEMM peak (2048 x 2048 ``torch.mm``,
      median of 10, measured by a child in the same run).
    * Peak memory of one training step at 1024 px, batch 1 (forward, cross-entropy, backward, SGD step): the growth of
      ``ru_maxrss`` over the process's baseline after the model and the optimizer are built.
    Every case runs in a fresh subprocess (``--child``), cases interleaved, so that no case's memory or caches are
    another's.

How to run
    uv run --locked python benchmarks/models.py             # ~4 min on 2 cores
    uv run --locked python benchmarks/models.py --quick     # 224 px inference only, 2 steps: a smoke run
    Writes ``benchmarks/results/models.json`` and ``models.csv`` (``--out DIR``).

How to read it
    "x resnet50" divides by our resnet50 in the same run (the paper's comparison; its MAC ratio at 1024 is 1.21).
    torchvision's resnet50 is the outside reference for our resnet50. On a machine whose cores are shared the times
    scatter: check the load average and the min..max spread.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from machine import gemm_peak, machine_info, run_child, write_results

MODELS = ("resnet50", "botnet50", "tv_resnet50")


def build(name: str, size: int) -> torch.nn.Module:
    if name == "tv_resnet50":
        import torchvision

        return torchvision.models.resnet50()
    import botnet

    return botnet.create_model(name, img_size=size)


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_infer(name: str, size: int, batch: int, steps: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build(name, size).eval()
    x = torch.randn(batch, 3, size, size)
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(steps):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return {"times": times}


def child_train(name: str, size: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build(name, size).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(1, 3, size, size), torch.tensor([3])
    base = _maxrss_mib()
    t0 = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return {"peak_mib": _maxrss_mib() - base, "seconds": time.perf_counter() - t0}


def macs(name: str, size: int) -> int:
    from botnet.models import count_macs, create_model

    return count_macs(create_model(name.removeprefix("tv_"), img_size=size), (size, size))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        kind, *rest = argv[1:]
        if kind == "infer":
            report = child_infer(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
        elif kind == "train":
            report = child_train(rest[0], int(rest[1]))
        else:
            report = gemm_peak()
        print(json.dumps(report))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="224 px inference only, 2 steps")
    parser.add_argument("--steps", type=int, default=5, help="timed inference calls per case")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    steps = 2 if args.quick else args.steps
    load_start, t_start = os.getloadavg(), time.perf_counter()
    gemm = run_child(__file__, ["gemm"])["gflops"]
    print(f"GEMM peak {gemm:.1f} GFLOP/s", flush=True)

    rows: list[dict[str, Any]] = []
    for size, batch in ((224, 8),) if args.quick else ((224, 8), (1024, 1)):
        for name in MODELS:
            r = run_child(__file__, ["infer", name, size, batch, steps])
            gmacs = macs(name, size) * batch / 1e9
            med = statistics.median(r["times"])
            row = {
                "model": name,
                "mode": "inference",
                "size": size,
                "batch": batch,
                "s_median": round(med, 4),
                "s_min": round(min(r["times"]), 4),
                "s_max": round(max(r["times"]), 4),
                "gmacs": round(gmacs, 2),
                "gflops_per_s": round(2 * gmacs / med, 1),
                "of_gemm_peak": round(2 * gmacs / med / gemm, 3),
            }
            rows.append(row)
            print(f"{name:>12} {size} px inference x{batch}: {med:.3f} s, {row['gflops_per_s']} GFLOP/s", flush=True)
    if not args.quick:
        for name in MODELS:
            r = run_child(__file__, ["train", name, 1024])
            rows.append({"model": name, "mode": "train step", "size": 1024, "batch": 1, "peak_mib": r["peak_mib"]})
            rows[-1]["s_median"] = round(r["seconds"], 3)
            print(f"{name:>12} 1024 px train step: peak +{r['peak_mib']:.0f} MiB, {r['seconds']:.1f} s", flush=True)

    def ratio(mode: str, size: int, key: str) -> float | None:
        pick = {r["model"]: r[key] for r in rows if r["mode"] == mode and r["size"] == size and key in r}
        return round(pick["botnet50"] / pick["resnet50"], 3) if "botnet50" in pick else None

    ratios = {
        "inference_224": ratio("inference", 224, "s_median"),
        "inference_1024": ratio("inference", 1024, "s_median"),
        "train_peak_memory_1024": ratio("train step", 1024, "peak_mib"),
    }
    print()
    head = f"{'model':>12} {'mode':>11} {'size':>5} {'s median':>9} {'min':>8} {'max':>8} "
    head += f"{'GFLOP/s':>8} {'of peak':>8} {'MiB':>7}"
    print(head)
    dash = f"{'-':>8}"
    for r in rows:
        peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r else "-"
        flops = f"{r['gflops_per_s']:>8.1f} {r['of_gemm_peak']:>8.1%}" if "gflops_per_s" in r else f"{dash} {dash}"
        lo, hi = (f"{r['s_min']:>8.3f}", f"{r['s_max']:>8.3f}") if "s_min" in r else (dash, dash)
        print(f"{r['model']:>12} {r['mode']:>11} {r['size']:>5} {r['s_median']:>9.3f} {lo} {hi} {flops} {peak:>7}")
    print(f"botnet50 / resnet50: {json.dumps(ratios)}")
    load_end, wall = os.getloadavg(), time.perf_counter() - t_start
    load = f"load average start {load_start[0]:.2f}, end {load_end[0]:.2f}"
    print(f"GEMM peak {gemm:.1f} GFLOP/s; {load}; wall {wall:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "command": "python benchmarks/models.py " + " ".join(argv),
        "machine": machine_info(),
        "gemm_gflops": gemm,
        "load_average": {"start": load_start, "end": load_end},
        "ratios_botnet50_x_resnet50": ratios,
        "rows": rows,
    }
    write_results(args.out / "models", record, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
