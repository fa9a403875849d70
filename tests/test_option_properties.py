"""Property-based test (hypothesis) of the option parsers of every command: a value of the wrong type, out of range,
or not finite, for any numeric option, gives exit status 2 and a message naming the option, never a traceback.

Only parsing and validation run (every value drawn is invalid, so no command gets to work). The valid ranges below
are written from each option's help text, not read from the package's own tables; the options themselves are
read from the parsers, so a new numeric option without a row here fails ``test_every_numeric_option_has_a_range``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
from dataclasses import fields
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botnet.classification import trainer
from botnet.classification.config import TrainConfig
from botnet.cli.main import build_parser, main
from botnet.detection import trainer as detection_trainer
from botnet.detection.config import DetectConfig

INF = math.inf
ONE_IMAGE_SIDE = 18918  # the largest square float32 RGB image (12 bytes a pixel) within 4 GiB: isqrt(4 GiB / 12)
ONE_PANEL_SIDE = 37837  # the same for an 8-bit RGB panel (3 bytes a pixel)
MAX_SEED = 2**63 - 1

# (low, low allowed, high, high allowed, a valid value): from the help texts (botnet COMMAND --help).
TRAINING = {
    "lr": (0, False, INF, False, 0.1),
    "momentum": (0, True, 1, False, 0.9),
    "betas": (0, True, 1, False, 0.9),
    "weight_decay": (0, True, INF, False, 0.0),
    "warmup_epochs": (0, True, INF, False, 1.0),
    "warmup_start": (0, True, 1, True, 0.1),
    "min_lr": (0, True, INF, False, 0.0),
    "clip_grad": (0, False, INF, False, 1.0),
    "ema_decay": (0, True, 1, False, 0.0),
    "seed": (0, True, MAX_SEED, True, 0),
    "log_interval": (1, True, INF, False, 10),
    "checkpoint_steps": (0, True, INF, False, 0),
    "eval_interval": (1, True, INF, False, 1),
    "epochs": (1, True, INF, False, 1),
    "time": (0, False, INF, False, 10.0),
    "batch_size": (1, True, INF, False, 8),
    "accumulate": (1, True, INF, False, 1),
    "workers": (0, True, INF, False, 0),
    "max_bad_fraction": (0, True, 1, True, 0.01),
    "max_image_pixels": (1, True, INF, False, 1000),
    "shapes_train": (1, True, INF, False, 10),
    "shapes_val": (1, True, INF, False, 10),
    "hflip": (0, True, 1, True, 0.5),
    "val_fraction": (0, False, 1, False, 0.2),
}
RANGES = {
    ("train",): {
        **TRAINING,
        "image_size": (8, True, ONE_IMAGE_SIDE, True, 64),
        "scale": (0, False, 1, True, 0.5),
        "ratio": (0, False, INF, False, 1.0),
        "mixup_alpha": (0, True, INF, False, 0.0),
        "cutmix_alpha": (0, True, INF, False, 0.0),
        "mix_prob": (0, True, 1, True, 1.0),
        "crop_pct": (0, False, 1, True, 0.875),
        "label_smoothing": (0, True, 1, True, 0.1),
        "freeze_stages": (0, True, 4, True, 1),
        "backbone_lr_scale": (0, False, 1, True, 0.1),
        "mean": (0, True, 1, True, 0.5),
        "std": (0, False, 1, True, 0.25),
    },
    ("detect", "train"): {
        "max_detections": (1, True, INF, False, 100),
        "vflip": (0, True, 1, True, 0.5),
        **TRAINING,
        "image_size": (32, True, ONE_IMAGE_SIDE, True, 128),
        "trainable_backbone_layers": (0, True, 5, True, 3),
        "scale_range": (0, False, 4, True, 1.0),
        "anchor_sizes": (1, True, INF, False, 16),
    },
    ("eval",): {"batch_size": (1, True, INF, False, 8), "workers": (0, True, INF, False, 0)},
    ("detect", "eval"): {"batch_size": (1, True, INF, False, 2), "workers": (0, True, INF, False, 0)},
    ("predict",): {"topk": (1, True, INF, False, 5), "max_pixels": (1, True, INF, False, 1000)},
    ("attention",): {"panel": (32, True, ONE_PANEL_SIDE, True, 192), "max_pixels": (1, True, INF, False, 1000)},
    ("detect", "predict"): {"score_threshold": (0, True, 1, True, 0.5), "max_pixels": (1, True, INF, False, 1000)},
    ("export",): {"atol": (0, True, INF, False, 1e-4), "opset": (18, True, 23, True, 20)},
    ("info",): {"size": (1, True, ONE_IMAGE_SIDE, True, 224)},
}
REQUIRED = {  # what each command needs besides the option under test (never read: the option is refused first)
    ("eval",): ["--checkpoint", "nowhere"],
    ("detect", "eval"): ["--checkpoint", "nowhere"],
    ("predict",): ["--checkpoint", "nowhere", "x.png"],
    ("attention",): ["--checkpoint", "nowhere", "x.png"],
    ("detect", "predict"): ["--checkpoint", "nowhere", "x.png"],
    ("export",): ["--checkpoint", "nowhere"],
    ("info",): ["botnet_tiny"],
}
OPTION_CLASSES = {("train",): TrainConfig, ("detect", "train"): DetectConfig}


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaf_parsers(sub, (*path, name))


def numeric_options() -> dict[tuple[tuple[str, ...], str], tuple[type, int]]:
    """{(command, dest): (int or float, how many values it takes, 0 for one number)} of every numeric option of
    every command, from the parsers (``type=int/float``) and the options classes (fields typed int/float, or tuples of
    them)."""
    found = {}
    for command, parser in leaf_parsers(build_parser()):
        cls = OPTION_CLASSES.get(command)
        hints = {f.name: f for f in fields(cls)} if cls else {}
        for action in parser._actions:
            if not action.option_strings or action.dest in ("help", "bounds"):
                continue
            if action.type in (int, float):
                found[command, action.dest] = (action.type, False)
            elif action.dest in hints:
                text = str(hints[action.dest].type)
                pair = text.split("]")[0].count(",") + 1 if text.startswith("tuple") else 0  # values it takes
                kind = int if "int" in text else float if "float" in text else None
                if kind is not None and "bool" not in text:
                    found[command, action.dest] = (kind, pair)
    found[("info",), "size"] = (int, False)  # --size H[xW]: whole pixels
    return found


OPTIONS = numeric_options()


def test_every_numeric_option_has_a_range():
    assert len(OPTIONS) > 60  # train and detect train alone have more than 20 each
    missing = sorted(f"{' '.join(c)} --{d.replace('_', '-')}" for c, d in OPTIONS if d not in RANGES.get(c, {}))
    assert not missing, f"numeric options without a range in this test (and perhaps without bounds): {missing}"


def fmt(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@st.composite
def bad_option(draw):
    """(command, flag, argv of the option, what is wrong) with an invalid value."""
    command, dest = draw(st.sampled_from(sorted(OPTIONS)))
    kind, pair = OPTIONS[command, dest]
    low, low_ok, high, high_ok, good = RANGES[command][dest]
    strategies = [
        st.sampled_from(["nan", "inf", "-inf", "NaN", "+inf", "1e999"]).map(lambda v: ("non-finite", v)),
        st.sampled_from(["abc", "", "1,5", "0x1f", "1e", "two", "[1]", "None!"]).map(lambda v: ("wrong type", v)),
    ]
    if kind is int:
        strategies.append(
            st.floats(allow_nan=False, allow_infinity=False)
            .filter(lambda v: not v.is_integer())
            .map(lambda v: ("not whole", fmt(v)))
        )
        below = st.integers(max_value=low - 1 if low_ok else low, min_value=-(10**12))
        above = st.integers(min_value=high + 1 if high_ok else high, max_value=10**20) if high < INF else None
    else:
        below = st.floats(max_value=low, exclude_max=low_ok, allow_nan=False, allow_infinity=False)
        above = (
            st.floats(min_value=high, exclude_min=high_ok, allow_nan=False, allow_infinity=False)
            if high < INF
            else None
        )
    strategies.append(below.map(lambda v: ("below the range", fmt(v))))
    if above is not None:
        strategies.append(above.map(lambda v: ("above the range", fmt(v))))
    what, value = draw(st.one_of(strategies))
    flag = "--" + dest.replace("_", "-")
    if pair:  # one bad value among the values, in any place
        place = draw(st.integers(min_value=0, max_value=pair - 1))
        values = [value if i == place else fmt(good) for i in range(pair)]
        return command, flag, [flag, *values], what
    return command, flag, [f"{flag}={value}"], what


def accepted(*args, **kwargs):
    raise AssertionError("an invalid option was accepted")


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(bad_option())
def test_a_bad_numeric_option_is_exit_2_naming_it_never_a_traceback(case):
    command, flag, option, what = case
    argv = [*command, *REQUIRED.get(command, []), *option]
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ),
        mock.patch.object(trainer, "train", accepted),  # a value wrongly accepted fails at once, without training
        mock.patch.object(detection_trainer, "detect_train", accepted),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        os.environ.pop("BOTNET_TRACEBACK", None)
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own type errors
            code = exit_.code
    message = err.getvalue()
    assert code == 2, (argv, what, message)
    assert flag in message, (argv, what, message)
    assert "Traceback" not in message, (argv, message)
    assert out.getvalue() == "", (argv, out.getvalue())
