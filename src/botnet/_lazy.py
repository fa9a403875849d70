"""Package attributes imported on first use (PEP 562), so that ``import botnet`` and the command line's parsers, help
and model registry do not import torch until something needs it."""

from __future__ import annotations

import importlib
import sys
import types


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> list[str]:
    """Make the public names of ``package`` import their submodule on first access; returns its ``__all__``.

    ``exports`` maps a submodule to the names it provides, ``""`` to submodules exported under their own name:
    ``{"models": ("create_model", "list_models"), "": ("layers", "models")}``. Once imported, a name stays in the
    package's namespace like an ordinary import.
    """
    where = {name: module for module, names in exports.items() for name in names}

    class LazyPackage(types.ModuleType):
        def __getattr__(self, name: str) -> object:  # only reached for names not imported yet
            if name not in where:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            module = where[name]
            value = importlib.import_module(f"{package}.{module or name}")
            value = getattr(value, name) if module else value
            setattr(self, name, value)
            return value

        def __setattr__(self, name: str, value: object) -> None:
            # Importing a submodule binds it to its name on the package; where the package exports a function of
            # that name from it (botnet.models.attention_maps), the function keeps the name, as with eager imports.
            if isinstance(value, types.ModuleType) and where.get(name) == name:
                value = getattr(value, name)
            super().__setattr__(name, value)

        def __dir__(self) -> list[str]:
            return sorted(set(super().__dir__()) | set(where))

    sys.modules[package].__class__ = LazyPackage
    return sorted(where)
