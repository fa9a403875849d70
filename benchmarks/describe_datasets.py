"""Time :mod:`botnet.data.describe` on datasets in botnet's layouts (e.g. those of ``benchmarks/real_datasets.py``).

    uv run --locked python benchmarks/describe_datasets.py /tmp/real [--max-headers 1000] [--repeat 3]

Each sub-folder with ``annotations/instances_train.json`` is described as COCO, one with ``train/`` as an
ImageFolder (the train split only). Prints the best of ``--repeat`` wall times and the description's summary.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from botnet.data.describe import DEFAULT_MAX_HEADERS, describe_coco_file, describe_image_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder of datasets")
    parser.add_argument("--max-headers", type=int, default=DEFAULT_MAX_HEADERS, help="image headers read per set")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per dataset (the best is shown)")
    args = parser.parse_args()
    for ds in sorted(p for p in args.root.iterdir() if p.is_dir()):
        ann = ds / "annotations" / "instances_train.json"
        if ann.is_file():
            run = lambda ann=ann: describe_coco_file(ann)  # noqa: E731
        elif (ds / "train").is_dir():
            run = lambda ds=ds: describe_image_folder(ds, "train", max_headers=args.max_headers)  # noqa: E731
        else:
            continue
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            desc = run()
            times.append(time.perf_counter() - t0)
        print(f"== {ds.name} ({desc.task}): best {min(times) * 1000:.1f} ms, first {times[0] * 1000:.1f} ms")
        print("   " + desc.summary().replace("\n", "\n   "))


if __name__ == "__main__":
    main()
