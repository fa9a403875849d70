"""Training throughput of the classification loop (``botnet.classification.train``), CPU or GPU, medians over repeats.

What is measured
    Every loop case runs the real training loop, ``botnet.classification.train``, exactly as ``botnet train`` does
    (data loader with the worker count it picks, augmentation, optimizer, scheduler, checkpoint after every epoch), on
    the built-in shapes dataset rendered at the case's size, in a fresh temporary output directory. Each epoch appends
    to ``metrics.jsonl``:

    * ``images_per_s``: training images / wall time of the epoch's loop (from creating the loader iterator to the last
      optimizer step; validation, checkpoints, metrics and plots are outside it);
    * ``data_wait_s``: time the loop spent waiting for the next batch (includes starting the loader's worker
      processes, if any, which happens again every epoch).

    A "bare step" case is the model's forward/backward/optimizer step on one fixed random batch, as many steps as the
    loop's epoch (no loader, no per-step bookkeeping): the upper bound of what the loop can deliver. The process
    keeps freed heap memory (``botnet.engine.heap``) from the start, as ``botnet train`` does, so loop and bare steps
    run under the same malloc settings.

    A run has ``--epochs`` epochs (default 2). The first epoch carries one-off costs (first-call allocations, oneDNN
    primitive creation) and is reported on its own ("1st ep"); every later epoch is one sample. Cases are interleaved
    across repeats (A B C D A B C D ...) so machine noise hits them alike; the table shows median/min/max over the
    samples. "outside s" is the wall time of ``train()`` not spent in the epochs' loops (data set-up, validation,
    checkpoints, plots), per run.

Cases
    1. ``botnet_tiny`` at 64 px, batch 64, the default run's 20,000 images (312 steps an epoch): the loop with the
       default worker count (auto: 0 on a CPU of <= 4 cores), the loop with 2 worker processes, and the bare step.
    2. ``botnet50`` (ours), ``resnet50`` (ours) and torchvision's ``resnet50`` (through ``model_fn``) at 224 px, batch
       16, 4 batches per epoch, default workers; the bare steps of botnet50 (the loop / bare ratio at 224 px), of our
       resnet50 and of torchvision's.
    3. With ``--with-1024``: bare steps of our resnet50 and torchvision's at 1024 px, batch 1.
    4. The JPEG input pipeline (``jpeg_pipeline.py``): ours, torchvision's and timm's loaders on the same folder of
       ``--jpeg-images`` photos (default 2048; 0 skips it), one core, img/s and ratios.

How to run
    uv run --locked python benchmarks/train_speed.py            # ~12 min on 2 idle CPU cores
    uv run --locked python benchmarks/train_speed.py --quick    # smoke run, ~2 min
    uv run --locked python benchmarks/train_speed.py --only 1024 --jpeg-images 0   # resnet50 at 1024 px alone
    Options: ``--repeats N`` (default 3), ``--epochs N`` (per run, >= 2), ``--jpeg-images N``, ``--with-1024``,
    ``--only TEXT ...`` (the cases whose name contains TEXT, with their references), ``--out DIR`` (default
    benchmarks/results).
    Writes ``train_speed.json`` (settings, machine, load averages, every epoch of every run) and ``train_speed.csv``
    (the table). On a machine whose cores are shared with other jobs the times grow several-fold and scatter: check
    the printed load average and the min..max spread before trusting a ratio.

How to read the ratio
    "ratio" = median images/s of the case / median images/s of the case named in "to", measured in the same run.
    For the 224 px rows the denominator is torchvision's ResNet-50 through the same loop: above 1 the case trains
    faster. BoTNet-50 has slightly fewer MACs than ResNet-50 at 224 px (4.02 vs 4.09 G), so ~1 means its attention
    costs what its FLOPs say, below 1 how much less efficient attention (softmax, relative logits, reshapes) is than
    convolution on this hardware. Ours resnet50 / torchvision resnet50 should be ~1 (the same network).
    For the bare 224 px resnet50 row it is torchvision's bare step: the same network, ~1 expected.
    For the 64 px loop rows the denominator is the bare step: the share of the model's pure compute speed the loop
    delivers; what is missing is data wait ("wait %") plus whatever else the loop and its loader processes cost.
    The JSON also holds the ratio per repeat (paired within a repeat), whose spread shows how far to trust it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import jpeg_pipeline
from botnet.classification import TrainConfig, train
from botnet.engine import build_config
from botnet.engine.distributed import auto_workers
from botnet.engine.heap import keep_freed_memory
from botnet.engine.optim import build_optimizer
from botnet.models import create_model
from machine import machine_info

DEFAULT = "tiny@64 loop (default)"  # botnet train with its defaults: workers auto (0 on <= 4 CPU cores)
WORKERS2 = "tiny@64 loop workers=2"
BARE = "tiny@64 bare step"  # its model's step alone: the denominator of the tiny rows' ratio
REFERENCE = "tv_resnet50@224"  # the denominator of the 224 px rows' ratio
BARE50 = "botnet50@224 bare step"
REF224 = "tv_resnet50@224 bare step"
REF1024 = "tv_resnet50@1024 bare step"


def tv_resnet50(num_classes: int) -> nn.Module:
    return torchvision.models.resnet50(num_classes=num_classes)


@dataclass(frozen=True)
class Case:
    """One row of the table: ``options`` for ``build_config`` (``bare``: the model's step without the loop).

    ``ref`` names the case whose images/s divides this one's in the "ratio" column.
    """

    name: str
    options: dict[str, Any]
    model_fn: Callable[[int], nn.Module] | None = None
    bare: bool = False
    ref: str | None = None


@dataclass
class Samples:
    """What the repeats of one case measured."""

    case: Case
    images_per_s: list[float] = field(default_factory=list)  # epochs after the first
    wait_fraction: list[float] = field(default_factory=list)
    wait_s: list[float] = field(default_factory=list)
    first_images_per_s: list[float] = field(default_factory=list)
    first_wait_fraction: list[float] = field(default_factory=list)
    outside_s: list[float] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)  # every epoch row of every run, with the load average


def build_cases(quick: bool, with_1024: bool = False) -> list[Case]:
    tiny_train = 256 if quick else 20_000  # the default run's train split: 312 batches of 64
    big_batch, big_batches = (4, 1) if quick else (16, 4)
    common = dict(data="shapes", workers=None, log_interval=10**6, eval_interval=10**6, seed=0)  # None: auto
    tiny = dict(common, model="botnet_tiny", image_size=64, batch_size=64, shapes_train=tiny_train, shapes_val=64)
    big = dict(common, image_size=224, batch_size=big_batch, shapes_train=big_batch * big_batches, shapes_val=big_batch)
    huge = dict(common, image_size=1024, batch_size=1, shapes_train=4, shapes_val=1)  # 4 steps an epoch
    return [
        Case(DEFAULT, tiny, ref=BARE),
        Case(WORKERS2, dict(tiny, workers=2), ref=BARE),
        Case(BARE, tiny, bare=True),
        Case("botnet50@224", dict(big, model="botnet50"), ref=REFERENCE),
        Case("resnet50@224", dict(big, model="resnet50"), ref=REFERENCE),
        Case(REFERENCE, dict(big, model="resnet50"), model_fn=tv_resnet50),
        Case(BARE50, dict(big, model="botnet50"), bare=True),
        Case("resnet50@224 bare step", dict(big, model="resnet50"), bare=True, ref=REF224),
        Case(REF224, dict(big, model="resnet50"), model_fn=tv_resnet50, bare=True),
    ] + (
        [
            Case("resnet50@1024 bare step", dict(huge, model="resnet50"), bare=True, ref=REF1024),
            Case(REF1024, dict(huge, model="resnet50"), model_fn=tv_resnet50, bare=True),
        ]
        if with_1024
        else []
    )


def run_loop(case: Case, epochs: int, workdir: Path) -> tuple[list[dict[str, Any]], float]:
    """Train ``case`` for ``epochs`` in a fresh directory; (metrics rows, wall time of ``train()`` in seconds)."""
    out = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    cfg = build_config(config_cls=TrainConfig, **case.options, epochs=epochs, output=str(out / "train"))
    captured = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            train(cfg, model_fn=case.model_fn)
    except BaseException:
        sys.stderr.write(captured.getvalue())
        raise
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    shutil.rmtree(out, ignore_errors=True)
    return rows, wall


def run_bare(case: Case, epochs: int) -> tuple[list[dict[str, Any]], float]:
    """The model's forward/backward/optimizer step on one fixed batch, as epochs of the same number of steps."""
    cfg = build_config(config_cls=TrainConfig, **case.options, epochs=epochs)
    torch.manual_seed(cfg.seed)
    model = case.model_fn(10) if case.model_fn else create_model(cfg.model, num_classes=10, img_size=cfg.image_size)
    optimizer = build_optimizer(model, cfg, lr=0.01)
    images = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size)  # (B, 3, H, W)
    targets = torch.arange(cfg.batch_size) % 10
    steps = cfg.shapes_train // cfg.batch_size  # as many steps as the loop's epoch
    model.train()
    rows, t_start = [], time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(model(images), targets, label_smoothing=cfg.label_smoothing)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss.item()
        elapsed = time.perf_counter() - t0
        rows.append(
            {
                "epoch": epoch + 1,
                "images_per_s": steps * cfg.batch_size / elapsed,
                "epoch_time_s": elapsed,
                "data_wait_s": 0.0,
            }
        )
    return rows, time.perf_counter() - t_start


def measure(cases: list[Case], repeats: int, epochs: int) -> dict[str, Samples]:
    results = {c.name: Samples(c) for c in cases}
    with tempfile.TemporaryDirectory(prefix="train_speed-") as tmp:
        for r in range(repeats):
            for case in cases:  # interleaved: A B C ... A B C ...
                load_before = os.getloadavg()[0]
                rows, wall = run_bare(case, epochs) if case.bare else run_loop(case, epochs, Path(tmp))
                s = results[case.name]
                for row in rows:
                    fraction = row["data_wait_s"] / row["epoch_time_s"]
                    if row["epoch"] == 1:
                        s.first_images_per_s.append(row["images_per_s"])
                        s.first_wait_fraction.append(fraction)
                    else:
                        s.images_per_s.append(row["images_per_s"])
                        s.wait_fraction.append(fraction)
                        s.wait_s.append(row["data_wait_s"])
                s.outside_s.append(wall - sum(row["epoch_time_s"] for row in rows))
                load_after = os.getloadavg()[0]
                s.runs.append({"repeat": r + 1, "wall_s": wall, "load1": [load_before, load_after], "epochs": rows})
                later = [f"{row['images_per_s']:.2f}" for row in rows[1:]]
                print(
                    f"[{r + 1}/{repeats}] {case.name:24s} img/s 1st {rows[0]['images_per_s']:.2f} then "
                    f"{' '.join(later)}  wall {wall:.0f}s  load {load_after:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def summarize(results: dict[str, Samples], repeats: int, epochs: int) -> list[dict[str, Any]]:
    per_run = epochs - 1  # samples per run

    def repeat_median(s: Samples, k: int) -> float:
        return statistics.median(s.images_per_s[k * per_run : (k + 1) * per_run])

    table = []
    for name, s in results.items():
        o = s.case.options
        row: dict[str, Any] = {
            "case": name,
            "model": "torchvision resnet50" if s.case.model_fn else o["model"],
            "bare": s.case.bare,
            "img_size": o["image_size"],
            "batch_size": o["batch_size"],
            "batches_per_epoch": o["shapes_train"] // o["batch_size"],
            "workers": 0 if s.case.bare else ("auto" if o["workers"] is None else o["workers"]),
            "samples": len(s.images_per_s),
            "images_per_s_median": statistics.median(s.images_per_s),
            "images_per_s_min": min(s.images_per_s),
            "images_per_s_max": max(s.images_per_s),
            "first_epoch_images_per_s_median": statistics.median(s.first_images_per_s),
            "data_wait_pct_median": 100 * statistics.median(s.wait_fraction),
            "data_wait_s_median": statistics.median(s.wait_s),
            "first_epoch_data_wait_pct_median": 100 * statistics.median(s.first_wait_fraction),
            "outside_epochs_s_median": statistics.median(s.outside_s),
            "ratio_to": s.case.ref,
            "ratio": None,
            "ratio_per_repeat": None,
        }
        if s.case.ref is not None:
            ref = results[s.case.ref]
            row["ratio"] = row["images_per_s_median"] / statistics.median(ref.images_per_s)
            row["ratio_per_repeat"] = [repeat_median(s, k) / repeat_median(ref, k) for k in range(repeats)]
        table.append(row)
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    head = ("case", "batch", "n", "img/s med", "min", "max", "1st ep", "wait %", "1st wait %", "outside s", "ratio")
    lines = [f"{head[0]:24s}" + "".join(f"{h:>11s}" for h in head[1:]) + "  to"]
    for r in table:
        cells = (
            f"{r['batch_size']}x{r['batches_per_epoch']}",
            str(r["samples"]),
            f"{r['images_per_s_median']:.2f}",
            f"{r['images_per_s_min']:.2f}",
            f"{r['images_per_s_max']:.2f}",
            f"{r['first_epoch_images_per_s_median']:.2f}",
            f"{r['data_wait_pct_median']:.1f}",
            f"{r['first_epoch_data_wait_pct_median']:.1f}",
            f"{r['outside_epochs_s_median']:.1f}",
            "-" if r["ratio"] is None else f"{r['ratio']:.3f}",
        )
        lines.append(f"{r['case']:24s}" + "".join(f"{c:>11s}" for c in cells) + f"  {r['ratio_to'] or ''}")
    return "\n".join(lines)


def verdicts(table: list[dict[str, Any]]) -> list[str]:
    by = {r["case"]: r for r in table}
    lines = []
    if DEFAULT in by and BARE in by:
        loop0 = by[DEFAULT]
        lines.append(
            f"default run (botnet_tiny@64, batch 64, workers auto = {auto_workers(torch.device('cpu'))} here): "
            f"{loop0['images_per_s_median']:.1f} img/s, {loop0['data_wait_pct_median']:.1f}% of the epoch waiting "
            f"for data; loop / bare step {loop0['ratio']:.3f} (per repeat: {_spread(loop0)})"
        )
    if DEFAULT in by and WORKERS2 in by and BARE in by:
        loop0, loop = by[DEFAULT], by[WORKERS2]
        lines.append(
            f"with 2 workers: {loop['images_per_s_median']:.1f} img/s, data wait {loop['data_wait_pct_median']:.1f}% "
            f"of the epoch ({loop['data_wait_s_median']:.2f}s, worker start-up included); loop / bare step "
            f"{loop['ratio']:.3f}; default / workers=2: "
            f"{loop0['images_per_s_median'] / loop['images_per_s_median']:.3f}"
        )
    if "botnet50@224" in by and BARE50 in by:
        loop50, bare50 = by["botnet50@224"], by[BARE50]
        lines.append(
            f"botnet50@224 loop / bare step: {loop50['images_per_s_median'] / bare50['images_per_s_median']:.3f} "
            f"(data wait {loop50['data_wait_pct_median']:.1f}% of the epoch)"
        )
    for name in ("botnet50@224", "resnet50@224", "resnet50@224 bare step", "resnet50@1024 bare step"):
        if name in by and by[name]["ratio"] is not None:
            r = by[name]
            lines.append(f"{name} / {r['ratio_to']}: {r['ratio']:.3f} (per repeat: {_spread(r)})")
    return lines


def _spread(row: dict[str, Any]) -> str:
    return ", ".join(f"{x:.3f}" for x in row["ratio_per_repeat"])


def measure_jpeg(images: int, repeats: int) -> list[dict[str, Any]]:
    """The JPEG input pipelines (``jpeg_pipeline.py``) on a folder of ``images`` photos written for this run."""
    with tempfile.TemporaryDirectory(prefix="jpeg-") as tmp:
        root = jpeg_pipeline.make_folder(Path(tmp), images)
        results = jpeg_pipeline.measure(root, repeats, log=lambda line: print(line, file=sys.stderr, flush=True))
    return jpeg_pipeline.summarize(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, smaller epochs")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of every case (default 3; 1 with --quick)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; the first is reported apart (>= 2)")
    parser.add_argument("--jpeg-images", type=int, default=2048, help="photos in the JPEG pipeline folder (0: skip)")
    parser.add_argument("--with-1024", action="store_true", help="add resnet50 ours vs torchvision at 1024 px, batch 1")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="TEXT",
        help="run only the cases whose name contains one of these (with the "
        "cases their ratios divide by), e.g. --only 1024",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results", help="results dir")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1:
        parser.error(f"--repeats must be at least 1, got {repeats}")
    if 0 < args.jpeg_images < jpeg_pipeline.BATCH:
        parser.error(f"--jpeg-images must be 0 or at least one batch ({jpeg_pipeline.BATCH}), got {args.jpeg_images}")
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first epoch is excluded), got {args.epochs}")

    cases = build_cases(args.quick, args.with_1024 or any("1024" in text for text in args.only or ()))
    if args.only:
        chosen = {c.name for c in cases if any(text in c.name for text in args.only)}
        chosen |= {c.ref for c in cases if c.name in chosen and c.ref is not None}
        cases = [c for c in cases if c.name in chosen]
        if not cases:
            parser.error(
                f"no case name contains any of {args.only}; cases: {[c.name for c in build_cases(False, True)]}"
            )
    keep_freed_memory()  # as `botnet train` does: the loop and the bare steps run under the same malloc settings
    load_start, t0 = os.getloadavg(), time.perf_counter()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in load_start)}", file=sys.stderr, flush=True)
    results = measure(cases, repeats, args.epochs)
    jpeg_rows = measure_jpeg(args.jpeg_images, repeats) if args.jpeg_images > 0 else []
    load_end = os.getloadavg()
    table = summarize(results, repeats, args.epochs)
    loads = [x for s in results.values() for run in s.runs for x in run["load1"]]

    print(format_table(table))
    for line in verdicts(table):
        print(line)
    if jpeg_rows:
        print(jpeg_pipeline.format_rows(jpeg_rows, args.jpeg_images))
    print(
        f"{repeats} repeat(s) x {args.epochs} epochs, {time.perf_counter() - t0:.0f}s; 1-min load average "
        f"{min(loads):.2f}..{max(loads):.2f} (start {load_start[0]:.2f}, end {load_end[0]:.2f}) on "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads",
        flush=True,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(["python", sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {"quick": args.quick, "repeats": repeats, "epochs": args.epochs},
        "machine": machine_info(torchvision=torchvision.__version__),
        "load_average": {"start": load_start, "end": load_end, "min_1min": min(loads), "max_1min": max(loads)},
        "table": table,
        "jpeg_pipeline": {"images": args.jpeg_images, "rows": jpeg_rows},
        "cases": [
            {
                "case": s.case.name,
                "options": s.case.options,
                "model_fn": s.case.model_fn.__name__ if s.case.model_fn else None,
                "runs": s.runs,
            }
            for s in results.values()
        ],
    }
    (args.out / "train_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    columns = [k for k in table[0] if k != "ratio_per_repeat"]
    with open(args.out / "train_speed.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in table:
            writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})
    print(f"wrote {args.out / 'train_speed.json'} and {args.out / 'train_speed.csv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
