"""make bench: measure each benchmark (all, or those named), keep its section, and write docs/BENCHMARKS.md.

    python -m benchmarks [serving] [model_time] [pipeline] [freshness] [quality] [tuning] [models_index] [log_scale]
    python -m benchmarks --assemble reliability     # docs/RELIABILITY.md from the fault tests' sections

Each benchmark is a module of this package with `section() -> str`: its markdown, headed `## ...`.
"""

from __future__ import annotations

import argparse
import importlib
import time

from benchmarks.report import DOCUMENTS, assemble, save_section

MODULES = {"serving": "benchmarks.serving", "model_time": "benchmarks.model_time",
           "pipeline": "benchmarks.pipeline_scale", "freshness": "benchmarks.freshness",
           "quality": "benchmarks.matchups_quality", "tuning": "benchmarks.matchups_tuning",
           "models_index": "benchmarks.models_index", "log_scale": "benchmarks.log_scale"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*MODULES, []], help="default: all of them")
    parser.add_argument("--assemble", choices=sorted(DOCUMENTS), help="only write this document from saved sections")
    args = parser.parse_args(argv)
    if args.assemble:
        print(assemble(args.assemble))
        return
    for name in args.names or list(MODULES):
        started = time.monotonic()
        print(f"bench {name}: measuring", flush=True)
        markdown = importlib.import_module(MODULES[name]).section()
        save_section("benchmarks", name, markdown)
        print(f"bench {name}: done in {time.monotonic() - started:.0f}s", flush=True)
    print(assemble("benchmarks"))


if __name__ == "__main__":
    main()
