"""``botnet export --checkpoint PATH``: one ONNX or torch.export file for every batch size and input size.

The file records the model name, class names and preprocessing, and is checked against PyTorch at two input sizes
before it is put in place.
"""

from __future__ import annotations

import argparse

from ..engine.outputs import check_output

FORMATS = ("onnx", "pt2")  # botnet.export.FORMATS, without importing torch for the help
DEFAULT_ATOL = 1e-4  # botnet.export.DEFAULT_ATOL


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a classifier to ONNX or torch.export", description=__doc__)
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a run directory, its last/ or best/, or a weights file written by botnet convert",
    )
    p.add_argument("--format", choices=FORMATS, default=None, help="default: from --output, else onnx")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="default: <run dir>/<model>-<last|best>.onnx (or .pt2); beside a weights file, its name with .onnx",
    )
    p.add_argument("--ema", action="store_true", help="export the EMA weights")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL, help="largest allowed |exported - PyTorch| logit")
    p.add_argument("--no-verify", action="store_true", help="skip running the exported file against PyTorch")
    p.set_defaults(run=run, bounds={"atol": dict(minimum=0), "opset": dict(minimum=1, optional=True)})


def run(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(args.output, option="--output")  # never inside the checkpoint it reads (check_output)
    from ..export import check_opset, export_checkpoint

    if args.format != "pt2":
        check_opset(args.opset)  # the installed exporter's range, before the checkpoint is read
    report = export_checkpoint(
        args.checkpoint,
        args.output,
        ema=args.ema,
        format=args.format,
        verify=not args.no_verify,
        atol=args.atol,
        opset=args.opset,
    )
    print(report.summary())
    return 0
