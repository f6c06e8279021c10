"""Matchups quality: what each training file is worth, on the project's own time-split holdout.

One model is trained on each shared matches file and one on both together, each in a bench home of its own, with
the default training settings. Each holdout is the newest 15 % of that run's rows, so the three holdouts differ: a
row compares the model with the baselines fitted on the same training rows and scored on the same holdout rows.
The strong baselines (Elo ordered logit, Dixon-Coles) are reported beside the naive ones; none of them gates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.models import bench_settings
from pronostico.core import layout, storage
from pronostico.core.config import Settings, load_settings
from pronostico.pipeline.steps import run_locally

FILES = {"Kaggle (FIFA-ranked)": ("international_matches.csv",), "results only": ("results.csv",),
         "both": ("international_matches.csv", "results.csv")}
SCORES = ("log_loss", "rps", "accuracy", "brier")


def train_on(name: str, files: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any], float]:
    """(metrics.json, manifest.json, seconds) of one run on `files`, in a bench home of its own."""
    settings: Settings = bench_settings(f"quality-{storage.safe_name(name)}")
    shared = load_settings().shared_data / "matchups"
    uris = [storage.to_uri(Path(shared / f)) for f in files]
    started = time.monotonic()
    outcome = run_locally(settings, "matchups", uris, f"quality-{storage.safe_name(name)}-{int(started)}",
                          progress=lambda line: print("  " + line, flush=True))
    seconds = time.monotonic() - started
    version = outcome["decision"].candidate

    def read(file: str) -> dict[str, Any]:
        return storage.read_json(layout.version_file(settings.models_uri, "matchups", version, file))

    return read(layout.METRICS), read(layout.MANIFEST), seconds


def table_rows(source: str, metrics: dict[str, Any]) -> list[str]:
    def row(label: str, scores: dict[str, Any]) -> str:
        return f"| {source} | {label} | " + " | ".join(f"{scores.get(s, float('nan')):.4f}" for s in SCORES) + " |"

    ranked = sorted(metrics["baselines"].items(), key=lambda item: item[1]["log_loss"])
    return [row("**model**", metrics["model"]), *(row(name, scores) for name, scores in ranked)]


def calibration_rows(source: str, metrics: dict[str, Any]) -> list[str]:
    """Per class: the mean predicted probability against the observed rate, and the bins' weighted gap."""
    rows = []
    for name, bins in (metrics["model"].get("calibration") or {}).items():
        total = sum(b["rows"] for b in bins) or 1
        gap = sum(b["rows"] * abs(b["observed"] - b["mean_predicted"]) for b in bins) / total
        predicted = sum(b["rows"] * b["mean_predicted"] for b in bins) / total
        observed = sum(b["rows"] * b["observed"] for b in bins) / total
        rows.append(f"| {source} | {name} | {predicted:.3f} | {observed:.3f} | {gap:.3f} |")
    return rows


def section() -> str:
    results = {name: train_on(name, files) for name, files in FILES.items()}
    lines = ["## Matchups quality by training file", "", __doc__.split("\n\n", 1)[1].strip(), "",
             "| trained on | predictor | log loss | RPS | accuracy | Brier |", "|---|---|---|---|---|---|"]
    for name, (metrics, _, _) in results.items():
        lines += table_rows(name, metrics)
    lines += ["", "| trained on | holdout | holdout rows | train rows | temperature | run seconds |",
              "|---|---|---|---|---|---|"]
    for name, (metrics, manifest, seconds) in results.items():
        split = metrics["split"]
        lines.append(f"| {name} | {split['holdout_start']} to {split['holdout_end']} | {split['holdout_rows']} | "
                     f"{split['train_rows']} | {manifest.get('calibration', {}).get('temperature', 1.0)} | "
                     f"{seconds:.0f} |")
    lines += ["", "Calibration of the model on its holdout, per class (bins of 0.1; the gap is the rows-weighted mean "
              "of |observed - predicted| over the bins):", "",
              "| trained on | class | mean predicted | observed | gap |", "|---|---|---|---|---|"]
    for name, (metrics, _, _) in results.items():
        lines += calibration_rows(name, metrics)
    return "\n".join(lines)
