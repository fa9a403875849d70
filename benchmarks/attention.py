"""Forward + backward time and peak memory of ``MHSA2d`` per backend against timm's ``BottleneckAttn``, fp32 on CPU.

What is measured
    One attention layer on a (2, 512, H, W) input that requires grad, 4 heads, relative position logits with tables
    exact at (H, W):

    * ``MHSA2d(512, heads=4, pos_enc="relative", ref_size=(H, W), backend=B)`` for B in "math", "sdpa", "chunked";
    * "math+bf16" and "chunked+bf16": the same layers under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (the
      output's largest error against the fp32 layer, relative to its largest value, and whether it is finite are
      reported too; "GFLOP/s" and "of peak" still divide by the fp32 GEMM peak);
    * ``timm.layers.BottleneckAttn(512, 512, feat_size=(H, W), num_heads=4, scale_pos_embed=True)``, the reference.

    One step is ``out = layer(x); out.sum().backward()``. Every (repeat, case, size) runs in a fresh subprocess
    (``--child``) that primes itself with one step of the same layer type on a (1, 512, 2, 2) map (one-off lazy imports
    and initialisation, which are no cost of the layer), builds the input and the layer, reads ``ru_maxrss`` (the
    process's resident-set high-water mark, KiB on Linux), runs one warm-up step, reads ``ru_maxrss`` again and reports
    the increase: the peak memory of one forward + backward (activations, saved tensors, gradients, allocator and
    oneDNN/MKL scratch), from a clean process so that no earlier case's freed memory hides it. It then times one more
    step (gradients reset to None first) and, in the first repeat only, counts the step's FLOPs with
    ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convs and SDPA kernels as dispatched, so the recomputed
    logits of "chunked" are counted; softmax and elementwise ops are not). Cases run interleaved (A B C D A B C D ...)
    across repeats so machine noise hits them alike; the table shows median/min/max over the repeats.

    Each repeat also runs a child that times ``torch.mm`` of two 2048 x 2048 fp32 matrices (2 * 2048^3 flop, median of
    10 after a warm-up): this machine's practical fp32 GEMM peak, the yardstick of the "of peak" column.

How to run
    uv run --locked python benchmarks/attention.py            # 14, 32 and 64 px maps, 3 repeats: ~6 min on 2 cores
    uv run --locked python benchmarks/attention.py --quick    # 14 and 32 only, 1 repeat: ~75 s
    Options: ``--sizes 14 32x48`` (HxW or H), ``--repeats N``, ``--out DIR`` (default benchmarks/results).
    Writes ``attention.json`` (settings, machine, load averages, every child's report) and ``attention.csv`` (the
    table).

How to read it
    "ms" is the wall time of one forward + backward. "x timm" = median time of the case / median time of timm's layer
    at the same size in the same run: below 1 is faster than timm. "peak MiB" is the RSS high-water increase of one
    step (median over repeats); "mem x timm" is its ratio to timm's, below 1 uses less. "GFLOP/s" = counted FLOPs /
    median time; "of peak" divides it by the GEMM throughput: how much of the machine's matmul speed the layer turns
    into useful work (the rest goes to softmax, the relative-logit gathers, reshapes and copies). "chunked"
    recomputes 60% of its pairs' logits in backward, so it counts more FLOPs than "math" for the same result. RSS is
    counted per page the process touched, so sizes below a few MiB are noise; on a machine whose cores are shared the
    times scatter: check the load average and the min..max spread before trusting a ratio.
"""

from __future__ import annotations

import argparse
import contextlib
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

BATCH, DIM, HEADS = 2, 512, 4
BACKENDS = ("math", "sdpa", "chunked")
LOW_PRECISION = ("math+bf16", "chunked+bf16")  # the same layers under torch.autocast("cpu", dtype=torch.bfloat16)
REFERENCE = "timm"
CASES = (*BACKENDS, *LOW_PRECISION, REFERENCE)
GEMM_N = 2048
FULL_SIZES = ((14, 14), (32, 32), (64, 64))
QUICK_SIZES = ((14, 14), (32, 32))


# ---------------------------------------------------------------------------------------------------- child process


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def build_layer(case: str, size: tuple[int, int]) -> torch.nn.Module:
    if case == REFERENCE:
        from timm.layers.bottleneck_attn import BottleneckAttn

        return BottleneckAttn(DIM, DIM, feat_size=size, num_heads=HEADS, scale_pos_embed=True)
    from botnet.layers import MHSA2d

    return MHSA2d(DIM, heads=HEADS, pos_enc="relative", ref_size=size, backend=case.partition("+")[0])


def precision(case: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the "+bf16" cases, fp32 otherwise."""
    if case.endswith("+bf16"):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def step(layer: torch.nn.Module, x: torch.Tensor, case: str = "math") -> None:
    """One forward + backward, gradients reset to None first (as ``zero_grad(set_to_none=True)``)."""
    x.grad = None
    for p in layer.parameters():
        p.grad = None
    with precision(case):
        out = layer(x)
    out.float().sum().backward()


def child_layer(case: str, size: tuple[int, int], count_flops: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    # Priming: one step of the same layer type on a 2x2 map, so that one-off costs (lazy imports, first-call
    # initialisation) do not count as the layer's memory.
    step(build_layer(case, (2, 2)), torch.randn(1, DIM, 2, 2, requires_grad=True), case)
    x = torch.randn(BATCH, DIM, *size, requires_grad=True)  # (B, C, H, W)
    layer = build_layer(case, size)
    rss_before = _maxrss_kib()
    step(layer, x, case)  # warm-up: first-call allocations, oneDNN primitive creation; its high-water mark is the peak
    rss_after = _maxrss_kib()
    t0 = time.perf_counter()
    step(layer, x, case)
    seconds = time.perf_counter() - t0
    report = {"rss_before_kib": rss_before, "rss_after_kib": rss_after, "peak_mib": (rss_after - rss_before) / 1024}
    report["seconds"] = seconds
    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step(layer, x, case)
        report["flops"] = counter.get_total_flops()
    if case in LOW_PRECISION:  # accuracy of the bf16 output against the same layer in fp32
        with torch.no_grad():
            exact = layer(x)
            with precision(case):
                low = layer(x).float()
        report["finite"] = bool(torch.isfinite(low).all())
        report["rel_err_vs_fp32"] = ((low - exact).abs().max() / exact.abs().max()).item()
    return report


# ---------------------------------------------------------------------------------------------------- parent process


def measure(sizes: list[tuple[int, int]], repeats: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every child's report, cases interleaved within each repeat; (layer reports, GEMM reports)."""
    layers, gemms = [], []
    for r in range(repeats):
        gemm = run_child(__file__, ["gemm"])
        gemms.append(dict(gemm, repeat=r, load=os.getloadavg()[0]))
        print(f"repeat {r + 1}/{repeats}: GEMM {gemm['gflops']:.1f} GFLOP/s", flush=True)
        for h, w in sizes:
            for case in CASES:
                args = [case, f"{h}x{w}"] + (["--flops"] if r == 0 else [])
                report = run_child(__file__, args)
                layers.append(dict(report, case=case, size=f"{h}x{w}", repeat=r, load=os.getloadavg()[0]))
                ms, mib = report["seconds"] * 1e3, report["peak_mib"]
                print(f"  {case:>8} {h}x{w}: {ms:8.1f} ms {mib:8.1f} MiB", flush=True)
    return layers, gemms


def summarize(layers: list[dict[str, Any]], gemm_gflops: float) -> list[dict[str, Any]]:
    table = []
    for size in dict.fromkeys(row["size"] for row in layers):
        rows = {case: [row for row in layers if row["size"] == size and row["case"] == case] for case in CASES}
        ref_ms = statistics.median(row["seconds"] for row in rows[REFERENCE]) * 1e3
        ref_mib = statistics.median(row["peak_mib"] for row in rows[REFERENCE])
        for case in CASES:
            ms = [row["seconds"] * 1e3 for row in rows[case]]
            mib = statistics.median(row["peak_mib"] for row in rows[case])
            flops = next(row["flops"] for row in rows[case] if "flops" in row)
            gflops = flops / (statistics.median(ms) / 1e3) / 1e9
            table.append(
                {
                    "layer": "timm BottleneckAttn" if case == REFERENCE else f"MHSA2d {case}",
                    "size": size,
                    "samples": len(ms),
                    "ms_median": round(statistics.median(ms), 1),
                    "ms_min": round(min(ms), 1),
                    "ms_max": round(max(ms), 1),
                    "time_x_timm": round(statistics.median(ms) / ref_ms, 3),
                    "peak_mib": round(mib, 1),
                    "mem_x_timm": round(mib / ref_mib, 3) if ref_mib > 0 else None,
                    "gflop": round(flops / 1e9, 2),
                    "gflops_per_s": round(gflops, 1),
                    "of_gemm_peak": round(gflops / gemm_gflops, 3),
                }
            )
            if case in LOW_PRECISION:
                table[-1]["rel_err_vs_fp32"] = max(row["rel_err_vs_fp32"] for row in rows[case])
                table[-1]["finite"] = all(row["finite"] for row in rows[case])
    return table


def format_table(table: list[dict[str, Any]], gemm_gflops: float) -> str:
    head = (
        f"{'layer':<20} {'size':>6} {'ms median':>10} {'min':>8} {'max':>8} {'x timm':>7} "
        f"{'peak MiB':>9} {'mem x timm':>10} {'GFLOP':>7} {'GFLOP/s':>8} {'of peak':>8}"
    )
    lines = [head, "-" * len(head)]
    for row in table:
        mem_ratio = "-" if row["mem_x_timm"] is None else f"{row['mem_x_timm']:.2f}"
        lines.append(
            f"{row['layer']:<20} {row['size']:>6} {row['ms_median']:>10.1f} "
            f"{row['ms_min']:>8.1f} {row['ms_max']:>8.1f} "
            f"{row['time_x_timm']:>7.2f} {row['peak_mib']:>9.1f} {mem_ratio:>10} {row['gflop']:>7.2f} "
            f"{row['gflops_per_s']:>8.1f} {row['of_gemm_peak']:>8.1%}"
        )
    lines.append(f"GEMM peak ({GEMM_N}x{GEMM_N} fp32 torch.mm, median over repeats): {gemm_gflops:.1f} GFLOP/s")
    by_key = {(row["layer"], row["size"]): row for row in table}
    for row in table:
        if row["layer"].endswith("+bf16"):
            fp32 = by_key[(row["layer"].removesuffix("+bf16"), row["size"])]
            lines.append(
                f"{row['layer']} {row['size']}: {fp32['ms_median'] / row['ms_median']:.2f}x the speed of fp32, "
                f"output max error {row['rel_err_vs_fp32']:.1e} of its largest value, finite: {row['finite']}"
            )
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    import timm

    return machine_info(timm=timm.__version__)


def parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        size = (int(h), int(w or h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be H or HxW with positive integers, got {text!r}") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"size must be H or HxW with positive integers, got {text!r}")
    return size


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="attention.py --child")
    parser.add_argument("case", choices=(*CASES, "gemm"))
    parser.add_argument("size", nargs="?", type=parse_size, default=(14, 14))
    parser.add_argument("--flops", action="store_true")
    args = parser.parse_args(argv)
    report = gemm_peak(GEMM_N) if args.case == "gemm" else child_layer(args.case, args.size, args.flops)
    print(json.dumps(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="14x14 and 32x32 only, 1 repeat")
    parser.add_argument("--sizes", nargs="+", type=parse_size, help="map sizes, H or HxW (default 14 32 64)")
    parser.add_argument("--repeats", type=int, help="timed steps per case, one fresh process each (default 3)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    sizes = args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES)
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")

    load_start, t0 = os.getloadavg(), time.perf_counter()
    layers, gemms = measure(sizes, repeats)
    load_end, wall = os.getloadavg(), time.perf_counter() - t0
    gemm_gflops = statistics.median(g["gflops"] for g in gemms)
    table = summarize(layers, gemm_gflops)
    print()
    print(format_table(table, gemm_gflops))
    print(f"load average (1 min) start {load_start[0]:.2f}, end {load_end[0]:.2f}; wall {wall:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"batch": BATCH, "dim": DIM, "heads": HEADS, "sizes": [f"{h}x{w}" for h, w in sizes]}
    settings.update(repeats=repeats, quick=args.quick, dtype="float32", device="cpu", gemm_n=GEMM_N)
    record = {
        "settings": settings,
        "machine": _machine(),
        "load_average": {"start": load_start, "end": load_end},
        "wall_s": round(wall, 1),
        "gemm_gflops_median": gemm_gflops,
        "table": table,
        "gemm": gemms,
        "children": layers,
    }
    write_results(args.out / "attention", record, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
