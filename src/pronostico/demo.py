"""`make demo`: train both use cases on the demo data and show predictions.

The demo data is the real files from ../shared/data when they are there, otherwise the
synthetic generator's output. Running it again retrains nothing that is already trained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pronostico import storage
from pronostico.config import Settings, load_settings
from pronostico.registry import read_current

SAMPLE_MATCHUPS = {"real": ("Brazil", "Argentina"), "synthetic": ("Syldavia", "Borduria")}


def demo_inputs(settings: Settings) -> tuple[str, dict[str, list[Path]]]:
    """('real' or 'synthetic', use case -> CSV files)."""
    shared = settings.shared_data
    if (shared / "matchups").is_dir() and (shared / "assets").is_dir():
        return "real", {"matchups": [shared / "matchups" / "international_matches.csv"],
                        "assets": sorted((shared / "assets").glob("*.csv"))}
    from pronostico.synthetic import write_demo_data

    out = settings.home / "demo-data"
    if not (out / "matchups").is_dir():
        write_demo_data(out)
    return "synthetic", {"matchups": sorted((out / "matchups").glob("*.csv")),
                         "assets": sorted((out / "assets").glob("*.csv"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--down", action="store_true", help="stop what the demo started")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.down:
        return 0
    from pronostico.cli import main as cli

    kind, inputs = demo_inputs(settings)
    print(f"demo data: {kind}")
    for use_case, files in inputs.items():
        if read_current(settings.models_uri, use_case):
            print(f"{use_case}: a model is already promoted; skipping training")
            continue
        uris = [a for f in files for a in ("--input", storage.to_uri(f))]
        if cli(["pipeline", "run", "--use-case", use_case, *uris]) != 0:
            return 1
    home, away = SAMPLE_MATCHUPS[kind]
    cli(["predict", "matchups", "--home", home, "--away", away, "--neutral"])
    symbol = next(iter(inputs["assets"])).stem
    return cli(["predict", "assets", "--symbol", symbol])


if __name__ == "__main__":
    sys.exit(main())
