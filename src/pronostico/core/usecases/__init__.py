"""The use cases pronostico knows, by name."""

from __future__ import annotations

from pronostico.core.usecases.assets import ASSETS
from pronostico.core.usecases.base import RequestError, UseCase
from pronostico.core.usecases.matchups import MATCHUPS

USE_CASES: dict[str, UseCase] = {uc.name: uc for uc in (MATCHUPS, ASSETS)}


def get_use_case(name: str) -> UseCase:
    try:
        return USE_CASES[name]
    except KeyError:
        raise ValueError(f"unknown use case {name!r}: choose one of {', '.join(USE_CASES)}") from None


__all__ = ["USE_CASES", "RequestError", "UseCase", "get_use_case"]
