"""Promoted models for the benchmarks: trained once per bench home with the default settings, then reused."""

from __future__ import annotations

import os
from pathlib import Path

from pronostico.core import registry, storage
from pronostico.core.config import Settings, load_settings
from pronostico.local.demo import demo_inputs
from pronostico.local.stack import processes
from pronostico.pipeline.steps import run_locally

USE_CASES = ("matchups", "assets")


def bench_settings(name: str, **env: str) -> Settings:
    """Settings on `$PRONOSTICO_HOME/bench/<name>`, a home of the benchmark's own."""
    home = load_settings().home / "bench" / name
    return load_settings({**os.environ, "PRONOSTICO_HOME": str(home), **env})


def private_web_ports() -> dict[str, str]:
    """Free ports for a benchmark's own nginx and app instances, beside whatever else runs on the machine."""
    port = processes.free_port
    return {"PRONOSTICO_WEB_PORT": str(port()), "PRONOSTICO_APP_PORTS": f"{port()},{port()}"}


def ensure_models(settings: Settings) -> str:
    """The models URI with a promoted model per use case, from the demo inputs (the real files where present)."""
    _, inputs = demo_inputs(settings)
    for use_case in USE_CASES:
        if registry.read_current(settings.models_uri, use_case) is None:
            uris = [storage.to_uri(Path(p)) for p in inputs[use_case]]
            run_locally(settings, use_case, uris, f"bench-{use_case}", progress=lambda line: print("  " + line))
    return settings.models_uri
