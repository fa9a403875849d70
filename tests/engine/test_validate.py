"""The shared numeric option checks: non-finite, out-of-range and memory-sized values refused with the option's name."""

import math

import pytest

from botnet.engine.validate import GIB, check_number, check_pair, check_side, flag, max_side


def test_flag_spelling():
    assert flag("image_size") == "--image-size"
    assert flag("--panel") == "--panel"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_refused_with_name(bad):
    with pytest.raises(ValueError, match=r"--momentum must be a finite number in \[0, 1\]"):
        check_number("--momentum", bad, minimum=0, maximum=1)


@pytest.mark.parametrize("bad", [True, "0.1", None, [0.1]])
def test_wrong_type_refused_with_name(bad):
    with pytest.raises(TypeError, match="--lr must be a number > 0"):
        check_number("--lr", bad, minimum=0, min_inclusive=False)


def test_bounds_inclusive_and_exclusive():
    assert check_number("--lr", 0.1, minimum=0, min_inclusive=False) == 0.1
    with pytest.raises(ValueError, match="--lr must be > 0, got 0"):
        check_number("--lr", 0, minimum=0, min_inclusive=False)
    assert check_number("--hflip", 1.0, minimum=0, maximum=1) == 1.0
    with pytest.raises(ValueError, match=r"--ema-decay must be in \(0, 1\), got 1"):
        check_number("--ema-decay", 1, minimum=0, maximum=1, min_inclusive=False, max_inclusive=False)
    with pytest.raises(ValueError, match="--workers must be >= 0, got -1"):
        check_number("--workers", -1, minimum=0, integer=True)
    with pytest.raises(ValueError, match="--clip-grad must be <= 10, got 11"):
        check_number("--clip-grad", 11, maximum=10)


def test_integer_options():
    assert check_number("--epochs", 3.0, minimum=1, integer=True) == 3
    assert type(check_number("--epochs", 3.0, minimum=1, integer=True)) is int
    with pytest.raises(ValueError, match="--epochs must be a whole number, got 2.5"):
        check_number("--epochs", 2.5, minimum=1, integer=True)
    with pytest.raises(ValueError, match="--warmup-epochs must be a finite number >= 0, got nan"):
        check_number("--warmup-epochs", math.nan, minimum=0, integer=True)


def test_optional_none():
    assert check_number("--clip-grad", None, minimum=0, optional=True) is None
    assert check_side("--image-size", None, optional=True) is None


def test_pair():
    assert check_pair("--scale", [0.08, 1.0], minimum=0, maximum=1) == (0.08, 1.0)
    with pytest.raises(ValueError, match="--scale must be given as low high with low <= high"):
        check_pair("--scale", (0.9, 0.1), minimum=0, maximum=1)
    with pytest.raises(ValueError, match="--scale must be a finite number"):
        check_pair("--scale", (math.nan, 1.0), minimum=0, maximum=1)
    with pytest.raises(TypeError, match="--scale takes two numbers"):
        check_pair("--scale", (0.5,))


@pytest.mark.parametrize(("bpp", "count", "gib"), [(12, 1, 4.0), (3, 1, 1.0), (12, 64, 16.0), (4, 7, 0.5)])
def test_max_side_is_the_largest_that_fits(bpp, count, gib):
    side = max_side(bpp, count=count, max_gib=gib)
    budget = gib * GIB
    assert side * side * bpp * count <= budget < (side + 1) * (side + 1) * bpp * count


def test_side_bound_tied_to_memory():
    largest = max_side()
    assert check_side("--image-size", largest) == largest
    with pytest.raises(ValueError) as err:
        check_side("--image-size", 100000)
    message = str(err.value)
    # 100000^2 pixels * 12 bytes = 111.76 GiB
    assert message.startswith("--image-size 100000 is too large: one image of 100000x100000 pixels would need 112 GiB")
    assert f"use at most {largest}" in message
    with pytest.raises(ValueError, match="--panel 100000 is too large: 3 images"):
        check_side("--panel", 100000, count=3, bytes_per_pixel=3)
    with pytest.raises(ValueError, match="--panel must be >= 32, got 8"):
        check_side("--panel", 8, minimum=32)
    with pytest.raises(ValueError, match="--image-size must be a finite number >= 1"):
        check_side("--image-size", math.inf)
