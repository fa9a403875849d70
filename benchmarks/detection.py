"""Mask R-CNN BoT50-FPN against R50-FPN (paper section 5): training step time, peak memory, inference time and MACs.

What is measured
    Both detectors come from this package, ``maskrcnn_botnet50_fpn`` and ``maskrcnn_resnet50_fpn`` (the same code path;
    they differ only in the c5 blocks), built with ``num_classes=91, image_size=S, fixed_size=True``, so every input
    is exactly S x S as in the paper, and without pretrained weights, so all BatchNorm layers train. fp32 on CPU.
    The input is one synthetic image (uniform noise, seed 0) with 5 objects: fixed boxes at fractions of S, an
    elliptic mask filling each box, labels 1..5.

    Every (repeat, size, mode, model) case runs in a fresh subprocess (``--child``) that builds the model, the
    input and (for training) the optimizer, reads ``ru_maxrss`` (the process's resident-set high-water mark, KiB on
    Linux) as its baseline, runs ``--warmup`` untimed steps (default 1) and then ``--steps`` timed steps, and reads
    ``ru_maxrss`` again: "peak MiB" is the growth over the baseline (activations, saved tensors, gradients, SGD
    momentum, allocator and oneDNN scratch), "abs MiB" the absolute high-water mark (weights included).

    * mode "train": ``model.train()``; one step is the summed loss of torchvision's Mask R-CNN on ONE image (batch 1),
      ``backward()``, ``SGD(lr=0.02 / 16, momentum=0.9, weight_decay=1e-4).step()`` (torchvision's reference recipe
      scaled to one image) and ``zero_grad(set_to_none=True)``. In the first repeat the child then counts the
      multiply-adds of one training forward (loss included, no backward) with ``torch.utils.flop_counter``
      (convolutions and matrix products; RoIAlign, NMS, BN and elementwise ops are not counted). Below ~512 px most
      of them sit in the heads: the mask head runs on the sampled positive RoIs (at most 128) whatever S is, and
      how many there are depends on the proposals of each untrained RPN, so it differs between the two models; the
      table shows it ("mask RoIs", median per training step). The backbone MACs are the clean comparison.
    * mode "infer": ``model.eval()`` under ``torch.no_grad()``, one image per call, built with
      ``box_score_thresh=0.0``: a randomly initialised box classifier scores every class near 1/91, below
      torchvision's 0.05, so the default would return no detection and skip the mask head; with 0.0 every image
      yields torchvision's cap of 100 detections: a fixed workload, as for a trained detector that fills the cap.

    Cases run interleaved (R50 and BoT50 of one size and mode back to back, repeated ``--repeats`` times) so machine
    noise hits both alike. Times are median/min/max over all timed steps of all repeats. The backbone's MACs at S x S
    (``botnet.models.count_macs`` on ``create_model(name, num_classes=0, img_size=S)``, built on the meta device: no
    arithmetic) are computed in the parent.

How to run
    uv run --locked python benchmarks/detection.py                      # 512 and 1024 px; long on a CPU
    uv run --locked python benchmarks/detection.py --sizes 512 --steps 1
    uv run --locked python benchmarks/detection.py --quick              # 256 px, 1 step, no warm-up: a smoke run
    Options: ``--sizes 512 1024``, ``--steps N`` (default 5 below 1024 px, 3 from 1024), ``--warmup N``,
    ``--repeats N`` (default 1), ``--threads N`` (torch threads per child, default all cores), ``--no-flops``,
    ``--out STEM`` (default benchmarks/results/detection: writes STEM.json with settings, machine, load averages and
    every child's report, and STEM.csv with the table).

How to read it
    The "BoT50 / R50" lines (the ``*_x_r50`` columns of the CSV) divide BoT50's median by R50's, both measured in the
    same run: above 1 BoT50 is slower, larger or costlier. The paper's reference (TPU, 1024 px): backbone MACs 1.21x,
    training step 1032.66 / 786.5 ms = 1.31x. The step ratio here is diluted by the FPN and the heads, which cost
    about the same for both models (up to the mask RoIs), and a CPU is not a TPU: compare the ratios, not the
    seconds. RSS is counted per page touched; on a machine whose cores are shared the times scatter: check the load
    average and the min..max spread before trusting a ratio.
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

from machine import machine_info, run_child, write_results

MODELS = ("resnet50", "botnet50")  # the reference first: every ratio is botnet50 / resnet50
LABELS = {"resnet50": "Mask R-CNN R50-FPN", "botnet50": "Mask R-CNN BoT50-FPN"}
REFERENCE, CANDIDATE = MODELS
MODES = ("train", "infer")
NUM_CLASSES = 91
# The synthetic objects: (x0, y0, x1, y1) as fractions of the image side; overlapping, of several sizes.
BOX_FRACTIONS = (
    (0.05, 0.05, 0.40, 0.35),
    (0.20, 0.25, 0.80, 0.70),
    (0.50, 0.05, 0.95, 0.35),
    (0.05, 0.60, 0.30, 0.95),
    (0.55, 0.60, 0.90, 0.90),
)
NUM_OBJECTS = len(BOX_FRACTIONS)
LR = 0.02 / 16  # torchvision's reference recipe (0.02 for 16 images), scaled to one image
PAPER_SIZE = 1024
PAPER_MACS_RATIO = 1.21  # backbone multiply-adds, BoT50 / R50 at 1024 x 1024
PAPER_STEP_MS = {"resnet50": 786.5, "botnet50": 1032.66}  # training step on TPU at 1024 x 1024
PAPER_STEP_RATIO = PAPER_STEP_MS["botnet50"] / PAPER_STEP_MS["resnet50"]
FULL_SIZES, QUICK_SIZES = (512, 1024), (256,)


def default_steps(size: int) -> int:
    return 3 if size >= 1024 else 5


# ---------------------------------------------------------------------------------------------------- child process


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def synthetic_sample(size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One S x S image and ``NUM_OBJECTS`` boxes with elliptic masks, the same for every run."""
    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))  # (3, S, S) in [0, 1)
    boxes = torch.tensor(BOX_FRACTIONS) * size  # (N, 4) x0, y0, x1, y1 in pixels
    ys = torch.arange(size).view(1, size, 1) + 0.5  # (1, S, 1) pixel centres
    xs = torch.arange(size).view(1, 1, size) + 0.5  # (1, 1, S)
    cx, cy = ((boxes[:, 0] + boxes[:, 2]) / 2).view(-1, 1, 1), ((boxes[:, 1] + boxes[:, 3]) / 2).view(-1, 1, 1)
    rx, ry = ((boxes[:, 2] - boxes[:, 0]) / 2).view(-1, 1, 1), ((boxes[:, 3] - boxes[:, 1]) / 2).view(-1, 1, 1)
    masks = (((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1).to(torch.uint8)  # (N, S, S) ellipse in each box
    labels = torch.arange(1, NUM_OBJECTS + 1)
    return image, {"boxes": boxes, "labels": labels, "masks": masks}


def build_detector(model: str, size: int, mode: str) -> torch.nn.Module:
    from botnet.detection import maskrcnn_botnet50_fpn, maskrcnn_resnet50_fpn

    builder = maskrcnn_botnet50_fpn if model == "botnet50" else maskrcnn_resnet50_fpn
    extra = {"box_score_thresh": 0.0} if mode == "infer" else {}  # a fixed 100 detections per image, see above
    return builder(num_classes=NUM_CLASSES, image_size=size, fixed_size=True, **extra)


def child_case(model_name: str, size: int, mode: str, steps: int, warmup: int, count_flops: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    t_build = time.perf_counter()
    model = build_detector(model_name, size, mode)
    image, target = synthetic_sample(size)
    build_s = time.perf_counter() - t_build
    report: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters()), "build_s": build_s}

    if mode == "train":
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4)

        def step() -> float:
            loss = sum(model([image], [target]).values())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.item()

    else:
        model.eval()

        def step() -> float:
            with torch.no_grad():
                return float(len(model([image])[0]["boxes"]))  # detections

    mask_rois: list[int] = []  # RoIs through the mask head per step: the heads' share of the work depends on them
    hook = model.roi_heads.mask_head.register_forward_hook(lambda _m, inputs, _out: mask_rois.append(len(inputs[0])))
    rss_before = _maxrss_kib()
    values, times = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        values.append(step())
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    rss_after = _maxrss_kib()
    hook.remove()
    report.update(
        seconds=times,
        rss_before_kib=rss_before,
        rss_after_kib=rss_after,
        peak_mib=(rss_after - rss_before) / 1024,
        abs_peak_mib=rss_after / 1024,
        mask_rois=mask_rois[warmup:],
    )
    report["losses" if mode == "train" else "detections"] = values

    if count_flops and mode == "train":
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            model([image], [target])
        report["forward_flops"] = counter.get_total_flops()
    return report


# ---------------------------------------------------------------------------------------------------- parent process


def backbone_macs(sizes: list[int]) -> dict[tuple[str, int], int]:
    """Multiply-adds of the backbone body alone (no FPN, no head) at S x S, counted on the meta device."""
    from botnet.models import count_macs, create_model

    macs = {}
    for model in MODELS:
        for size in sizes:
            with torch.device("meta"):
                net = create_model(model, num_classes=0, img_size=size)
            macs[model, size] = count_macs(net, (size, size))
    return macs


def measure(sizes: list[int], steps: dict[int, int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every child's report, R50 and BoT50 back to back for each (repeat, size, mode)."""
    children = []
    for r in range(args.repeats):
        for size in sizes:
            for mode in MODES:
                for model in MODELS:
                    child_args = [model, str(size), mode, "--steps", str(steps[size])]
                    child_args += ["--warmup", str(args.warmup), "--threads", str(args.threads)]
                    child_args += ["--flops"] if r == 0 and not args.no_flops else []
                    t0 = time.perf_counter()
                    report = run_child(__file__, child_args)
                    wall = time.perf_counter() - t0
                    children.append(
                        dict(report, model=model, size=size, mode=mode, repeat=r, wall_s=wall, load=os.getloadavg()[0])
                    )
                    secs = " ".join(f"{s:.2f}" for s in report["seconds"])
                    print(
                        f"[{r + 1}/{args.repeats}] {model:>8} {size:>5} px {mode:>5}: steps {secs} s, "
                        f"mask RoIs {report['mask_rois']}, peak +{report['peak_mib']:.0f} MiB, child wall {wall:.0f} s",
                        flush=True,
                    )
    return children


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else round(a / b, 3)


def summarize(children: list[dict[str, Any]], macs: dict[tuple[str, int], int]) -> list[dict[str, Any]]:
    table = []
    for size in dict.fromkeys(c["size"] for c in children):
        rows = {}
        for model in MODELS:
            train = [c for c in children if c["model"] == model and c["size"] == size and c["mode"] == "train"]
            infer = [c for c in children if c["model"] == model and c["size"] == size and c["mode"] == "infer"]
            train_s = [s for c in train for s in c["seconds"]]
            infer_s = [s for c in infer for s in c["seconds"]]
            flops = next((c["forward_flops"] for c in train if "forward_flops" in c), None)
            rows[model] = {
                "model": LABELS[model],
                "size": size,
                "batch": 1,
                "params_m": round(train[0]["params"] / 1e6, 2),
                "train_steps": len(train_s),
                "train_s_median": round(statistics.median(train_s), 3),
                "train_s_min": round(min(train_s), 3),
                "train_s_max": round(max(train_s), 3),
                "train_peak_mib": round(statistics.median(c["peak_mib"] for c in train), 1),
                "train_abs_peak_mib": round(statistics.median(c["abs_peak_mib"] for c in train), 1),
                "train_mask_rois": statistics.median(n for c in train for n in c["mask_rois"]),
                "infer_steps": len(infer_s),
                "infer_s_median": round(statistics.median(infer_s), 3),
                "infer_peak_mib": round(statistics.median(c["peak_mib"] for c in infer), 1),
                "backbone_gmacs": round(macs[model, size] / 1e9, 2),
                "train_forward_gmacs": None if flops is None else round(flops / 2e9, 2),
            }
        ref = rows[REFERENCE]
        for model, row in rows.items():
            row["train_x_r50"] = _ratio(row["train_s_median"], ref["train_s_median"])
            row["train_peak_x_r50"] = _ratio(row["train_peak_mib"], ref["train_peak_mib"])
            row["infer_x_r50"] = _ratio(row["infer_s_median"], ref["infer_s_median"])
            row["backbone_macs_x_r50"] = _ratio(macs[model, size], macs[REFERENCE, size])
            row["train_forward_macs_x_r50"] = _ratio(row["train_forward_gmacs"], ref["train_forward_gmacs"])
            paper = size == PAPER_SIZE and model == CANDIDATE
            row["paper_step_x_r50"] = round(PAPER_STEP_RATIO, 3) if paper else None
            row["paper_macs_x_r50"] = PAPER_MACS_RATIO if paper else None
            table.append(row)
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    head = (
        f"{'model':<22} {'size':>5} {'train s/step median (min-max)':>30} {'peak MiB':>9} {'abs MiB':>8} "
        f"{'mask RoIs':>9} {'infer s/img':>11} {'GMACs body':>10} {'GMACs train fwd':>15}"
    )
    lines = ["batch 1: one image per training step and per inference call", head, "-" * len(head)]
    for r in table:
        span = f"{r['train_s_median']:.2f} ({r['train_s_min']:.2f}-{r['train_s_max']:.2f})"
        fwd = "-" if r["train_forward_gmacs"] is None else f"{r['train_forward_gmacs']:.1f}"
        lines.append(
            f"{r['model']:<22} {r['size']:>5} {span:>30} {r['train_peak_mib']:>9.0f} {r['train_abs_peak_mib']:>8.0f} "
            f"{r['train_mask_rois']:>9g} {r['infer_s_median']:>11.2f} {r['backbone_gmacs']:>10.1f} {fwd:>15}"
        )
    lines.append("")

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    for r in table:
        if r["model"] != LABELS[CANDIDATE]:
            continue
        lines.append(
            f"BoT50 / R50 at {r['size']} px: train step {fmt(r['train_x_r50'])}, train peak memory "
            f"{fmt(r['train_peak_x_r50'])}, inference {fmt(r['infer_x_r50'])}, backbone MACs "
            f"{fmt(r['backbone_macs_x_r50'])}, training-forward MACs {fmt(r['train_forward_macs_x_r50'])}"
        )
    lines.append(
        f"paper at {PAPER_SIZE} px (TPU): train step {PAPER_STEP_RATIO:.2f} ({PAPER_STEP_MS['botnet50']} / "
        f"{PAPER_STEP_MS['resnet50']} ms), backbone MACs {PAPER_MACS_RATIO:.2f}"
    )
    return "\n".join(lines)


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="detection.py --child")
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("size", type=int)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--flops", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = child_case(args.model, args.size, args.mode, args.steps, args.warmup, args.flops)
    print(json.dumps(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 256 px, 1 step, no warm-up")
    parser.add_argument("--sizes", nargs="+", type=int, help="square input sizes in px (default 512 1024)")
    parser.add_argument("--steps", type=int, help="timed steps per child (default 5 below 1024 px, 3 from 1024)")
    parser.add_argument("--warmup", type=int, help="untimed steps before the timed ones (default 1; 0 with --quick)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds of fresh processes (default 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--no-flops", action="store_true", help="skip counting the training forward's MACs")
    default_out = Path(__file__).resolve().parent / "results" / "detection"
    parser.add_argument("--out", type=Path, default=default_out, help="writes OUT.json and OUT.csv")
    args = parser.parse_args(argv)
    sizes = args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES)
    if min(sizes) < 32:
        parser.error(f"--sizes must be at least 32 px, got {sizes}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.repeats < 1 or args.threads < 1:
        parser.error(f"--repeats and --threads must be >= 1, got {args.repeats} and {args.threads}")
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    steps = {s: args.steps or (1 if args.quick else default_steps(s)) for s in sizes}
    torch.set_num_threads(args.threads)

    load_start, t0 = os.getloadavg(), time.perf_counter()
    macs = backbone_macs(sizes)
    children = measure(sizes, steps, args)
    load_end, wall = os.getloadavg(), time.perf_counter() - t0
    table = summarize(children, macs)
    losses = [x for c in children for x in c.get("losses", [])]
    print()
    print(format_table(table))
    if not all(torch.isfinite(torch.tensor(losses))):
        print(f"warning: non-finite training loss in {losses}: the steps after it may not be representative")
    print(
        f"{args.repeats} repeat(s), warm-up {args.warmup}, {args.threads} torch threads on {os.cpu_count()} CPUs; "
        f"load average (1 min) start {load_start[0]:.2f}, end {load_end[0]:.2f}; wall {wall:.0f} s"
    )

    import torchvision

    settings = {"sizes": sizes, "steps": steps, "warmup": args.warmup, "repeats": args.repeats}
    settings.update(threads=args.threads, quick=args.quick, batch=1, num_classes=NUM_CLASSES, objects=NUM_OBJECTS)
    settings.update(lr=LR, dtype="float32", device="cpu", fixed_size=True, infer_box_score_thresh=0.0)
    record = {
        "command": " ".join(["python", sys.argv[0], *argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "machine": machine_info(torchvision=torchvision.__version__),
        "load_average": {"start": load_start, "end": load_end},
        "wall_s": round(wall, 1),
        "paper": {"size": PAPER_SIZE, "step_ms": PAPER_STEP_MS, "step_ratio": PAPER_STEP_RATIO},
        "table": table,
        "children": children,
    }
    write_results(args.out, record, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
