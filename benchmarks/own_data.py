"""The default recipe on real datasets, against a short hand search and a scikit-learn reference.

For each dataset written by ``benchmarks/real_datasets.py`` or ``benchmarks/box_datasets.py`` (both into the same
folder): ``botnet train --data DIR`` (or ``botnet detect train``) with nothing else; then the hand search, each
variant changing one value of the default run (the learning rate x2 and /2, the crop scale, flips; for detection a
1.5x larger size within the default run's time, twice the epochs, quarter turns toggled, a wider scale jitter); then,
for classification, an RBF support-vector machine on the raw pixels (scikit-learn, C picked from 1, 10, 100 by 3-fold
cross-validation on the training split). Prints one markdown row per run and writes them to ``OUT/results.jsonl``.

    uv run --locked --with scikit-learn python benchmarks/own_data.py DATASETS OUT [--only digits ...] [--skip-search]
        [--reuse]

Runs one after the other on all cores; the wall time of each run is its whole command, start-up included.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

CLASSIFICATION = ("digits", "mnist", "fashion_mnist", "lfw_faces", "textures")
DETECTION = ("fashion_on_photos", "nuclei", "neon_trees", "spacenet_buildings", "hela_nuclei", "cho_nuclei")


def run(cmd: list[str], out: Path, *, reuse: bool = False) -> dict:
    """Run a training command into ``out``; its last validation row, config and wall time. With ``reuse``, a finished
    run already in ``out`` (from an earlier call, with its wall time) is read instead of run again."""
    if reuse and (out / "wall_s.txt").exists():
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        cfg = yaml.safe_load((out / "config.yaml").read_text())
        return {"last": rows[-1], "config": cfg, "wall_s": float((out / "wall_s.txt").read_text())}
    start = time.perf_counter()
    proc = subprocess.run([*cmd, "--output", str(out), "--overwrite"], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:  # e.g. a learning rate that diverges: a result of the search, reported as such
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        return {"failed": reason, "wall_s": round(wall, 1)}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    (out / "wall_s.txt").write_text(f"{wall:.1f}")
    return {"last": rows[-1], "config": cfg, "wall_s": round(wall, 1)}


def classification_variants(cfg: dict) -> dict[str, list[str]]:
    """The hand search around a default run's resolved values."""
    flip = "0" if cfg["hflip"] else "0.5"
    return {
        "lr x2": ["--lr", f"{cfg['lr'] * 2:g}"],
        "lr /2": ["--lr", f"{cfg['lr'] / 2:g}"],
        "crops 0.35-1": ["--scale", "0.35", "1", "--ratio", "0.75", "1.3333"],
        f"hflip {flip}": ["--hflip", flip],
    }


def detection_variants(cfg: dict, minutes: float) -> dict[str, list[str]]:
    """The hand search around a default run's resolved values; a variant that costs more per step (a larger size)
    gets the default run's wall time as its --time, so it trains fewer epochs; a longer schedule is reported with its
    own (longer) time."""
    larger = 32 * round(1.5 * cfg["image_size"] / 32)
    turns = "false" if cfg.get("rot90") else "true"
    return {
        "lr x2": ["--lr", f"{cfg['lr'] * 2:g}"],
        "lr /2": ["--lr", f"{cfg['lr'] / 2:g}"],
        f"size {larger} (same time)": ["--image-size", str(larger), "--time", f"{minutes:.2f}"],
        "epochs x2": ["--epochs", str(2 * cfg["epochs"])],
        f"turns {turns}": ["--rot90", turns],
        "jitter 0.5-1.5": ["--scale-range", "0.5", "1.5"],
    }


def pixels(split: Path) -> tuple[np.ndarray, np.ndarray]:
    classes = sorted(p.name for p in split.iterdir() if p.is_dir())
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted((split / name).iterdir()):
            xs.append(np.asarray(Image.open(f).convert("L"), dtype=np.float32).ravel() / 255.0)
            ys.append(label)
    return np.stack(xs), np.array(ys)


def svm_reference(root: Path) -> dict:
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    start = time.perf_counter()
    x_train, y_train = pixels(root / "train")
    x_val, y_val = pixels(root / "val")
    search = GridSearchCV(SVC(kernel="rbf", gamma="scale"), {"C": [1, 10, 100]}, cv=3).fit(x_train, y_train)
    acc = 100.0 * float((search.predict(x_val) == y_val).mean())
    return {"top1": round(acc, 2), "C": search.best_params_["C"], "wall_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", type=Path, help="the output folder of benchmarks/real_datasets.py")
    p.add_argument("out", type=Path, help="where the runs and results.jsonl go")
    p.add_argument("--only", nargs="+", help="dataset names (default: all found)")
    p.add_argument("--skip-search", action="store_true", help="the default runs (and references) only")
    p.add_argument("--reuse", action="store_true", help="read the finished runs already in OUT instead of rerunning")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    botnet = [sys.executable, "-m", "botnet"]
    for name in args.only or (*CLASSIFICATION, *DETECTION):
        root = args.datasets / name
        if not root.is_dir():
            print(f"{name}: not in {args.datasets}, skipped", file=sys.stderr)
            continue
        detection = name in DETECTION
        cmd = (
            [*botnet, "detect", "train", "--data", str(root)] if detection else [*botnet, "train", "--data", str(root)]
        )
        metric = "val_bbox_AP50" if detection else "val_top1"
        default = run(cmd, args.out / name / "default", reuse=args.reuse)
        rows = [("defaults", default)]
        if not args.skip_search and "failed" not in default:  # the variants are taken from the default's values
            if detection:
                variants = detection_variants(default["config"], default["wall_s"] / 60)
            else:
                variants = classification_variants(default["config"])
            for label, extra in variants.items():
                slug = label.replace(" ", "_").replace("/", "div").replace("'", "")
                rows.append((label, run([*cmd, *extra], args.out / name / slug, reuse=args.reuse)))
        for label, r in rows:
            if "failed" in r:
                print(f"| {name} | {label} | failed: {r['failed']} | {r['wall_s']:.0f} s |", flush=True)
                with results.open("a") as fh:
                    fh.write(json.dumps({"dataset": name, "run": label, **r}) + "\n")
                continue
            line = {"dataset": name, "run": label, metric: r["last"][metric], "wall_s": r["wall_s"]}
            if not detection:
                line["val_balanced_acc"] = r["last"]["val_balanced_acc"]
            score = r["last"][metric] * (100 if detection else 1)  # box AP is stored as a fraction, top-1 in %
            print(f"| {name} | {label} | {score:.2f} | {r['wall_s']:.0f} s |", flush=True)
            with results.open("a") as fh:
                fh.write(json.dumps(line) + "\n")
        if not detection:
            ref = svm_reference(root)
            print(f"| {name} | SVM (RBF, C={ref['C']}) | {ref['top1']:.2f} | {ref['wall_s']:.0f} s |", flush=True)
            with results.open("a") as fh:
                fh.write(json.dumps({"dataset": name, "run": "svm", **ref}) + "\n")


if __name__ == "__main__":
    main()
