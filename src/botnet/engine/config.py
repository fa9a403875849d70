"""Options of a run as one dataclass per task: defaults, then a YAML file, then command-line flags.

Every field of a task's options dataclass (built with :func:`option`) is a YAML key (``lr: 0.2``) and a flag
(``--lr 0.2``); ``botnet train --help`` lists them all. A field left at ``None`` where the help says "auto" is resolved
by the task's recipe, and the resolved values are what ``config.yaml`` in the output directory records. Nothing here
imports torch, so the command line can build its parsers and report bad options at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import stat
import types
import typing
from dataclasses import field, fields
from pathlib import Path
from typing import Any

import yaml

from .reporting import atomic_write
from .validate import check_option, flag

BUILTIN = "shapes"  # data: the built-in generated dataset


def option(
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,
    yaml_only: bool = False,
    bounds: dict[str, Any] | None = None,
    group: str = "",
) -> Any:
    """A field of an options dataclass: its default, its ``--help`` text, for a numeric field its ``bounds`` (the
    keywords of :func:`botnet.engine.validate.check_option`; integer and optional come from the annotation), and
    the ``group`` it is listed with in ``--help`` and ``config.yaml``."""
    meta = {"help": help, "choices": choices, "yaml_only": yaml_only, "bounds": bounds or {}, "group": group}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def retune(cls: type, name: str, default: Any, help: str | None = None, bounds: dict[str, Any] | None = None) -> Any:
    """Field ``name`` of the options class ``cls`` with another default (and help, or bounds), the rest kept: how a
    task's options class gives a shared option the task's own default."""
    meta = dict(cls.__dataclass_fields__[name].metadata)
    return option(
        default, help or meta["help"], meta["choices"], meta["yaml_only"], bounds or meta["bounds"], meta["group"]
    )


class ConfigBase:
    """What every options dataclass shares: plain-dict export, functional update, and the checks of choices and
    bounds declared beside each field (:func:`option`). A numeric field without bounds is still refused when it is
    not a finite number.
    """

    GROUPS: typing.ClassVar[tuple[str, ...]] = ("",)  # the order of the fields' groups

    @classmethod
    def ordered_fields(cls) -> list[dataclasses.Field]:
        """The fields in the order of ``--help`` and ``config.yaml``: by group (:attr:`GROUPS`), then as declared."""
        return sorted(fields(cls), key=lambda f: cls.GROUPS.index(f.metadata.get("group", "")))

    def check_choices(self) -> None:
        """Refuse a field outside its ``choices`` (None stands for "auto" and is allowed), naming the field."""
        for f in fields(self):
            value, choices = getattr(self, f.name), f.metadata.get("choices")
            if choices and value is not None and value not in choices:
                raise ValueError(f"invalid option {f.name}: {value!r} is not one of {', '.join(choices)}")

    def check_bounds(self) -> None:
        """Refuse every numeric field that is not a finite number within its bounds, naming it as a flag
        (``--momentum must be in [0, 1), got nan``); store the accepted values (``3.0`` becomes ``3``)."""
        for f in fields(self):
            scalar, optional, pair = _field_kind(f, type(self))
            if scalar not in (int, float):
                continue
            bounds = {"integer": scalar is int, "optional": optional, "pair": pair, **f.metadata.get("bounds", {})}
            setattr(self, f.name, check_option(flag(f.name), getattr(self, f.name), bounds))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in self.ordered_fields()}

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)

    @property
    def builtin_data(self) -> bool:
        """Whether the run uses the built-in generated dataset (``data: shapes``)."""
        return self.data == BUILTIN


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ------------------------------------------------------------------------------------------------------------------
# Parsing values from YAML and flags


def _field_kind(f: dataclasses.Field, cls: type) -> tuple[type, bool, int]:
    """(scalar type, optional?, 0 for a scalar or n for a tuple of n) of a field of ``cls``, from its annotation."""
    hint = typing.get_type_hints(cls)[f.name]
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is tuple:
        return typing.get_args(hint)[0], optional, len(typing.get_args(hint))
    if origin is types.UnionType or origin is typing.Union:  # pragma: no cover - not used by the fields
        raise AssertionError(hint)
    return (hint if isinstance(hint, type) else dict), optional, 0


def coerce(name: str, value: Any, cls: type) -> Any:
    """Convert a YAML or flag value to the type of field ``name`` of ``cls``; ValueError says what was expected."""
    f = {f.name: f for f in fields(cls)}[name]
    scalar, optional, pair = _field_kind(f, cls)
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", "off"))):
        return None

    def one(v: Any) -> Any:
        if scalar is bool:
            if isinstance(v, bool):
                return v
            if isinstance(v, str) and v.lower() in ("true", "yes", "1", "false", "no", "0"):
                return v.lower() in ("true", "yes", "1")
            raise ValueError
        if scalar is int:
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError
            return int(v)
        if scalar is float:
            if isinstance(v, bool):
                raise ValueError
            return float(v)
        if scalar is dict:
            if not isinstance(v, dict):
                raise ValueError
            return dict(v)
        return str(v)

    what = _TYPE_NAMES.get(scalar, scalar.__name__)
    count = {2: "two", 3: "three"}.get(pair, str(pair))
    expected = f"{count} {what}s" if pair else f"{'an' if what[0] in 'aeiou' else 'a'} {what}"
    try:
        if pair:
            if isinstance(value, str):
                value = value.replace(",", " ").split()
            if not isinstance(value, (list, tuple)) or len(value) != pair:
                raise ValueError
            return tuple(one(v) for v in value)
        return one(value)
    except (TypeError, ValueError):
        hint = " (or none)" if optional else ""
        raise ValueError(f"invalid option {flag(name)}: expected {expected}{hint}, got {value!r}") from None


_TYPE_NAMES = {int: "integer", float: "number", bool: "boolean", str: "string", dict: "mapping"}
MAX_CONFIG_BYTES = 1 << 20  # a YAML file of options is a few KiB; anything this large is the wrong file


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML leaves it to the loader; PyYAML would keep
    the last one without a word, so ``lr: 0.1`` further up would silently not count)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ValueError(
                    f"option {key} is given twice (lines {seen[key]} and {line}); the last one would silently win, "
                    "so keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_config_text(path: Path) -> str:
    """The text of a config file: a regular file (a FIFO would block), bounded in size, UTF-8; errors name it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"config file {path} is a directory; give a YAML file of options")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"config file {path} is not a regular file (a FIFO, socket or device); give a YAML file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"config file {path} is {st.st_size} bytes: not a YAML file of options (at most 1 MiB)")
    data = path.read_bytes()[:MAX_CONFIG_BYTES]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"config file {path} is not a text (UTF-8) YAML file: {err.reason} at byte {err.start}"
        ) from None
    if "\x00" in text:
        raise ValueError(f"config file {path} is a binary file, not a YAML file of options")
    return text


# Options that were spelled otherwise: a config file using the old key is refused with the new one, and a run's own
# config.yaml written with the old key reads as the new one (run directories keep loading).
RENAMED_OPTIONS = {"img_size": "image_size"}


def load_yaml(path: str | Path, cls: type, *, run_config: bool = False) -> dict[str, Any]:
    """Read a YAML config file into ``{field: value}``; unknown keys are an error listing the valid ones. A
    ``run_config`` (a run directory's config.yaml) may use an option's old spelling (:data:`RENAMED_OPTIONS`)."""
    path = Path(path)
    text = _read_config_text(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}  # a SafeLoader: plain data only
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {err}") from None
    except ValueError as err:
        raise ValueError(f"config file {path}: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value, got {type(raw).__name__}")
    names = [f.name for f in cls.ordered_fields()]
    old = [k for k in raw if k in RENAMED_OPTIONS and RENAMED_OPTIONS[k] in names]
    if old and run_config:
        raw = {RENAMED_OPTIONS.get(k, k): v for k, v in raw.items()}
    elif old:
        new = RENAMED_OPTIONS[old[0]]
        raise ValueError(f"config file {path}: option {old[0]} is spelled {new} (the flag {flag(new)}); rename the key")
    unknown = sorted(k for k in raw if k not in names)
    if unknown:
        raise ValueError(
            f"config file {path}: unknown option(s) {', '.join(map(str, unknown))}; valid: {', '.join(names)}"
        )
    return {k: coerce(k, v, cls) for k, v in raw.items()}


def build_config(
    file: str | Path | None = None, *, config_cls: type, run_config: bool = False, **overrides: Any
) -> Any:
    """Defaults of ``config_cls``, then the YAML ``file`` (a run's own config.yaml when ``run_config``), then
    ``overrides`` (already typed, or strings from flags)."""
    values = load_yaml(file, config_cls, run_config=run_config) if file else {}
    values.update({k: coerce(k, v, config_cls) for k, v in overrides.items()})
    return config_cls(**values).validate()


def save_yaml(cfg: Any, path: str | Path, comments: dict[str, str] | None = None) -> None:
    """Write a config (or a plain dict) as YAML atomically; ``comments`` ({top-level key: text}) follow their key's
    line as ``key: value  # auto: text`` (YAML ignores them when the file is read back)."""
    data = cfg if isinstance(cfg, dict) else cfg.to_dict()
    text = yaml.safe_dump(data, sort_keys=False)
    if comments:
        lines = text.splitlines()
        for i, line in enumerate(lines):
            key = line.split(":", 1)[0]
            if not line.startswith((" ", "-")) and key in comments:
                lines[i] = f"{line}  {AUTO_COMMENT}{' '.join(comments[key].split())}"
        text = "\n".join(lines) + "\n"
    atomic_write(path, text)


AUTO_COMMENT = "# auto: "


def read_yaml_comments(path: str | Path) -> dict[str, str]:
    """The ``{key: text}`` comments :func:`save_yaml` wrote into ``path`` (``{}`` when there is none or no file)."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    found = {}
    for line in lines:
        if not line.startswith((" ", "-")) and f"  {AUTO_COMMENT}" in line:
            found[line.split(":", 1)[0]] = line.split(f"  {AUTO_COMMENT}", 1)[1]
    return found


class _BoolAction(argparse.BooleanOptionalAction):
    """``--flag``, ``--flag true|false`` (as in YAML) and ``--no-flag``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nargs = "?"

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        if option_string is not None and option_string.startswith("--no-"):
            if values is not None:
                parser.error(f"{option_string} takes no value")
            setattr(namespace, self.dest, False)
        else:
            setattr(namespace, self.dest, True if values is None else values)  # a value is coerced with the rest


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field (``--batch-size``), defaulting to "not given" so the YAML file's value stands."""
    for f in cls.ordered_fields():
        if f.metadata.get("yaml_only"):
            continue
        scalar, optional, pair = _field_kind(f, cls)
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        text = f"{f.metadata['help']} [{_plain(default) if default is not None else 'auto'}]"
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": text, "dest": f.name}
        if scalar is bool:
            parser.add_argument(flag, action=_BoolAction, metavar="true|false", **kw)
        elif pair:
            metavar = ("MIN", "MAX") if pair == 2 else ("R", "G", "B") if pair == 3 else None
            parser.add_argument(flag, nargs=pair, metavar=metavar, **kw)
        else:
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
            parser.add_argument(flag, metavar=f.name.upper() if not kw.get("choices") else None, **kw)


def overrides_from_args(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The options given on the command line, by field name."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


# ------------------------------------------------------------------------------------------------------------------
# Resuming

# Options that may change when resuming: they do not alter what the run computes.
RESUMABLE_CHANGES = (
    "workers",
    "log_interval",
    "checkpoint_steps",
    "device",
    "output",
    "max_bad_fraction",
    "tensorboard",
)


def check_resume_changes(saved: Any, given: dict[str, Any], resumable: tuple[str, ...] = RESUMABLE_CHANGES) -> None:
    """Refuse options that would change what a resumed run computes."""
    changed = sorted(k for k, v in given.items() if k not in resumable and getattr(saved, k) != v)
    if changed:
        may = ", ".join(flag(k) for k in resumable if k != "output")  # a resume writes to its run: no --output
        raise ValueError(
            f"cannot change {', '.join(flag(k) for k in changed)} when resuming: the resumed run must compute what "
            f"the interrupted one would have; only {may} may change, and --data when it holds the run's data at "
            "another place. Start a new run with --output instead"
        )
