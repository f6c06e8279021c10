"""The use cases pronostico knows, found rather than listed.

A use case is a module that defines `USE_CASE`, an instance of `base.UseCase` whose name is the module's own name.
The built-in ones are the modules of this package; PRONOSTICO_EXTRA_USE_CASES names more modules, anywhere on the
path, so that adding a use case needs its module and nothing else. `names()` finds the names without importing the
modules (standard library only: the trigger Lambda uses it), and `USE_CASES` imports them on first use.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import fields
from functools import cache
from typing import TYPE_CHECKING

from pronostico.core.config import SETTING, Settings

if TYPE_CHECKING:
    from pronostico.core.usecases.base import UseCase

NOT_USE_CASES = frozenset({"base"})  # the contract every use case implements
# read straight from the environment, not through load_settings, because every logged answer looks a use case up
EXTRA_VARIABLE = next(f.metadata[SETTING].variable for f in fields(Settings) if f.name == "extra_use_cases")


@cache
def _built_in() -> tuple[str, ...]:
    found = sorted(m.name for m in pkgutil.iter_modules(__path__)
                   if not m.ispkg and not m.name.startswith("_") and m.name not in NOT_USE_CASES)
    return tuple(f"{__name__}.{m}" for m in found)


@cache
def _modules(extra: str) -> tuple[str, ...]:
    return (*_built_in(), *(m.strip() for m in extra.split(",") if m.strip()))


def module_names() -> tuple[str, ...]:
    """The modules that define use cases: this package's, then the extra ones, in that order."""
    return _modules(os.environ.get(EXTRA_VARIABLE, ""))


def names() -> tuple[str, ...]:
    return tuple(module.rsplit(".", 1)[-1] for module in module_names())


@cache
def _load(modules: tuple[str, ...]) -> dict[str, UseCase]:
    found: dict[str, UseCase] = {}
    for module_name in modules:
        use_case = getattr(importlib.import_module(module_name), "USE_CASE", None)
        expected = module_name.rsplit(".", 1)[-1]
        if use_case is None or use_case.name != expected:
            raise RuntimeError(f"{module_name} must define USE_CASE, a UseCase named {expected!r}")
        found[use_case.name] = use_case
    return dict(sorted(found.items(), key=lambda item: (item[1].display_order, item[0])))


class Registry(Mapping[str, "UseCase"]):
    """Name -> use case, imported on first use (the names are known before)."""

    def __init__(self) -> None:
        self._by_extra: dict[str, dict[str, UseCase]] = {}

    def _cases(self) -> dict[str, UseCase]:
        # every logged answer looks its use case up: one environment read and one dict lookup
        extra = os.environ.get(EXTRA_VARIABLE, "")
        cases = self._by_extra.get(extra)
        if cases is None:
            cases = self._by_extra[extra] = _load(_modules(extra))
        return cases

    def __getitem__(self, name: str) -> UseCase:
        return self._cases()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cases())

    def __len__(self) -> int:
        return len(self._cases())


USE_CASES: Mapping[str, UseCase] = Registry()


def get_use_case(name: str) -> UseCase:
    try:
        return USE_CASES[name]
    except KeyError:
        raise ValueError(f"unknown use case {name!r}: choose one of {', '.join(USE_CASES)}") from None
