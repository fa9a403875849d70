"""One validation for every numeric option: finiteness, range, and sizes bounded by the memory they would need.

Each check names the option as the user wrote it (``--image-size``, or a YAML key) and says what would be right, so a
bad value is refused before any work instead of failing later as ``cannot convert float NaN to integer`` or a NumPy
"Unable to allocate 149 GiB". Every function returns the value it accepted, so an option class can write
``self.lr = check_number("--lr", self.lr, minimum=0, min_inclusive=False)``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

GIB = 1 << 30
MAX_IMAGE_GIB = 4.0  # one float32 RGB image larger than this is a mistake, not a training input
FLOAT32_RGB = 3 * 4  # bytes per pixel of a float32 RGB tensor


def flag(name: str) -> str:
    """The command-line spelling of an option field: ``image_size`` -> ``--image-size`` (a ``--flag`` stays)."""
    return name if name.startswith("-") else "--" + name.replace("_", "-")


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    integer: bool = False,
    optional: bool = False,
) -> Any:
    """``value`` if it is a finite real number within the bounds, else a ``TypeError``/``ValueError`` naming ``name``.

    Args:
        name: the option as the user sees it, e.g. ``"--momentum"`` (see :func:`flag`).
        value: the parsed value. ``bool`` is refused (``True`` is not the number 1 here); integral floats are
            accepted for ``integer`` options and returned as ``int``.
        minimum, maximum: bounds; ``None`` leaves that side open.
        min_inclusive, max_inclusive: whether the bounds themselves are allowed.
        integer: the value must be a whole number.
        optional: ``None`` is accepted (and returned) as "off" / "auto".
    """
    if value is None and optional:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be {kind}{_range_text(minimum, maximum, min_inclusive, max_inclusive)}, "
            f"got {value!r} ({type(value).__name__})"
        )
    if not math.isfinite(value):
        raise ValueError(
            f"{name} must be a finite number{_range_text(minimum, maximum, min_inclusive, max_inclusive)}, got {value}"
        )
    if integer:
        if not float(value).is_integer():
            raise ValueError(f"{name} must be a whole number, got {value}")
        value = int(value)
    low_bad = minimum is not None and (value < minimum or (value == minimum and not min_inclusive))
    high_bad = maximum is not None and (value > maximum or (value == maximum and not max_inclusive))
    if low_bad or high_bad:
        raise ValueError(f"{name} must be{_range_text(minimum, maximum, min_inclusive, max_inclusive)}, got {value}")
    return value


def check_pair(name: str, value: Any, *, ordered: bool = True, **bounds: Any) -> tuple[Any, Any]:
    """A ``(low, high)`` option: two numbers, each checked by :func:`check_number`, with ``low <= high`` when
    ``ordered`` (a range such as ``--scale``; AdamW's ``--betas`` are two numbers in no order)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} takes two numbers ({'low high' if ordered else 'first second'}), got {value!r}")
    low, high = (check_number(name, v, **bounds) for v in value)
    if ordered and low > high:
        raise ValueError(f"{name} must be given as low high with low <= high, got {low} {high}")
    return low, high


def max_side(bytes_per_pixel: int = FLOAT32_RGB, *, count: int = 1, max_gib: float = MAX_IMAGE_GIB) -> int:
    """The largest square side whose ``count`` images of ``bytes_per_pixel`` fit in ``max_gib`` GiB."""
    return math.isqrt(int(max_gib * GIB) // (bytes_per_pixel * count))


def check_side(
    name: str,
    value: Any,
    *,
    minimum: int = 1,
    bytes_per_pixel: int = FLOAT32_RGB,
    count: int = 1,
    max_gib: float = MAX_IMAGE_GIB,
    optional: bool = False,
) -> Any:
    """An image side in pixels (``--image-size``, ``--panel``, a crop size): a whole number from ``minimum`` up to the
    largest square side whose ``count`` images of ``bytes_per_pixel`` fit in ``max_gib`` GiB.

    The bound is tied to memory, not to any model: ``--image-size 100000`` is refused because one float32 RGB image of
    that size alone needs 112 GiB, and the message says so and gives the largest side allowed.
    """
    value = check_number(name, value, minimum=minimum, integer=True, optional=optional)
    if value is None:
        return None
    largest = max_side(bytes_per_pixel, count=count, max_gib=max_gib)
    if value > largest:
        need = value * value * bytes_per_pixel * count / GIB
        what = f"{count} images" if count > 1 else "one image"
        raise ValueError(
            f"{name} {value} is too large: {what} of {value}x{value} pixels would need {need:.3g} GiB "
            f"({bytes_per_pixel} bytes per pixel), more than the {max_gib:g} GiB allowed; use at most {largest}"
        )
    return value


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range_text(minimum: float | None, maximum: float | None, min_inclusive: bool, max_inclusive: bool) -> str:
    if minimum is not None and maximum is not None:
        return f" in {'[' if min_inclusive else '('}{_num(minimum)}, {_num(maximum)}{']' if max_inclusive else ')'}"
    if minimum is not None:
        return f" {'>=' if min_inclusive else '>'} {_num(minimum)}"
    if maximum is not None:
        return f" {'<=' if max_inclusive else '<'} {_num(maximum)}"
    return ""


def check_option(name: str, value: Any, bounds: dict[str, Any]) -> Any:
    """One entry of an options table: ``bounds`` are :func:`check_number`'s keywords, or with ``side=True``
    :func:`check_side`'s, or with ``pair=n`` a tuple of n numbers each checked alike (``n=2``: :func:`check_pair`)."""
    bounds = dict(bounds)
    count = int(bounds.pop("pair", 0))  # 0: one number; n: a tuple of n numbers
    if count:
        if value is None and bounds.get("optional"):
            return None
        bounds.pop("optional", None)
        if count == 2:
            return check_pair(name, value, **bounds)
        if not isinstance(value, (tuple, list)) or len(value) != count:
            raise TypeError(f"{name} takes {count} numbers, got {value!r}")
        return tuple(check_number(name, v, **bounds) for v in value)
    if bounds.pop("side", False):
        bounds.pop("integer", None)
        return check_side(name, value, **bounds)
    return check_number(name, value, **bounds)


def check_options(values: dict[str, Any], table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Check every ``values[name]`` that ``table`` bounds (:func:`check_option`, named ``--name``); return the
    accepted values. The one mechanism behind every command's numeric options."""
    return {name: check_option(flag(name), values[name], bounds) for name, bounds in table.items() if name in values}
