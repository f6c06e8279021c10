"""The model registry: versions under models/<use_case>/versions/, and current.json.

current.json names the serving version. Only `promote_candidate` and `rollback` write it, in
one write, after everything else. The gate: a candidate is promoted when there is no champion,
or when its log loss on its own holdout is not worse than the champion's on the same rows.
Only holdout rows dated after the champion's training data count, so that the champion is
not judged on rows it learned from.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from pronostico.core import evaluate, layout, storage
from pronostico.core.forest import Forest
from pronostico.core.layout import current_uri, version_uri
from pronostico.core.usecases import get_use_case
from pronostico.core.usecases.base import UseCase

MIN_FAIR_ROWS = 50
TOLERANCE = 1e-12  # the same model retrained on the same data must count as "not worse"


@dataclass(frozen=True)
class Decision:
    use_case: str
    candidate: str
    champion: str | None
    promoted: bool
    reason: str
    rows_compared: int = 0
    candidate_log_loss: float | None = None
    champion_log_loss: float | None = None
    decided_at: str = ""


def read_current(models_uri: str, use_case: str) -> dict[str, Any] | None:
    uri = current_uri(models_uri, use_case)
    return storage.read_json(uri) if storage.exists(uri) else None


def list_versions(models_uri: str, use_case: str) -> list[dict[str, Any]]:
    """Complete versions (those with a manifest), oldest first, with their headline metrics."""
    base = layout.versions_uri(models_uri, use_case)
    current = (read_current(models_uri, use_case) or {}).get("version")
    found = []
    for info in storage.list_objects(base, suffix=layout.MANIFEST):
        manifest = storage.read_json(info.uri)
        version_dir = info.uri.rsplit("/", 1)[0]
        metrics_uri = storage.join(version_dir, layout.METRICS)
        metrics = storage.read_json(metrics_uri) if storage.exists(metrics_uri) else {}
        promotion_uri = storage.join(version_dir, layout.PROMOTION)
        found.append({"version": manifest["version"], "created_at": manifest["created_at"],
                      "current": manifest["version"] == current, "manifest": manifest, "metrics": metrics,
                      "promotion": storage.read_json(promotion_uri) if storage.exists(promotion_uri) else None})
    return sorted(found, key=lambda v: v["version"])


@dataclass(frozen=True)
class Candidate:
    version: str
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    forest: Forest
    features: list[str]


def load_version(models_uri: str, use_case: str, version: str) -> Candidate:
    uri = version_uri(models_uri, use_case, version)
    if not storage.exists(storage.join(uri, layout.MANIFEST)):
        raise FileNotFoundError(f"no complete version {version} of {use_case} under {models_uri}")
    return Candidate(version, storage.read_json(storage.join(uri, layout.MANIFEST)),
                     storage.read_json(storage.join(uri, layout.METRICS)),
                     Forest.from_bytes(storage.read_bytes(storage.join(uri, layout.FOREST))),
                     storage.read_json(storage.join(uri, layout.FEATURES)))


def load_holdout(models_uri: str, use_case: str, version: str) -> pd.DataFrame:
    data = storage.read_bytes(layout.version_file(models_uri, use_case, version, layout.HOLDOUT))
    return pd.read_parquet(io.BytesIO(data))


def promote_candidate(models_uri: str, use_case_name: str, version: str) -> Decision:
    """Apply the gate and, if the candidate passes, point current.json at it."""
    use_case = get_use_case(use_case_name)
    candidate = load_version(models_uri, use_case_name, version)
    current = read_current(models_uri, use_case_name)
    champion_version = current["version"] if current else None
    if champion_version is None:
        decision = Decision(use_case_name, version, None, True, "no champion yet")
    elif champion_version == version:
        decision = Decision(use_case_name, version, version, True, "already the serving version")
    else:
        champion = load_version(models_uri, use_case_name, champion_version)
        holdout = load_holdout(models_uri, use_case_name, version)
        decision = judge(use_case, candidate, champion, holdout)
    return _record(models_uri, decision, champion_version)


def judge(use_case: UseCase, candidate: Candidate, champion: Candidate, holdout: pd.DataFrame) -> Decision:
    base = {"use_case": use_case.name, "candidate": candidate.version, "champion": champion.version}
    missing = sorted(set(champion.features) - set(holdout.columns))
    if missing:
        beats = all(v["beats_baseline"] for v in candidate.metrics["versus_baselines"].values())
        reason = (f"champion needs features this holdout lacks ({', '.join(missing)}); the candidate "
                  f"{'beats' if beats else 'does not beat'} every baseline")
        return Decision(**base, promoted=beats, reason=reason)
    fair = holdout[holdout["date"] > champion.manifest["training_range"]["end"]].reset_index(drop=True)
    rows, candidate_p = evaluate.served_probabilities(use_case, candidate.forest, fair, candidate.features)
    if len(rows) < MIN_FAIR_ROWS:
        return Decision(**base, promoted=False, rows_compared=len(rows),
                        reason=(f"only {len(rows)} holdout rows are newer than the champion's training "
                                f"data (need {MIN_FAIR_ROWS}): no fair comparison, champion kept"))
    _, champion_p = evaluate.served_probabilities(use_case, champion.forest, fair, champion.features)
    labels = rows["label"].to_numpy().astype(int)
    ours, theirs = evaluate.log_loss(labels, candidate_p), evaluate.log_loss(labels, champion_p)
    promoted = ours <= theirs + TOLERANCE
    verdict = "not worse than" if promoted else "worse than"
    return Decision(**base, promoted=promoted, rows_compared=len(rows), candidate_log_loss=ours,
                    champion_log_loss=theirs,
                    reason=f"holdout log loss {ours:.4f} is {verdict} the champion's {theirs:.4f} "
                           f"on the same {len(rows)} rows")


def _record(models_uri: str, decision: Decision, previous: str | None) -> Decision:
    decision = Decision(**{**asdict(decision), "decided_at": datetime.now(UTC).isoformat(timespec="seconds")})
    vuri = version_uri(models_uri, decision.use_case, decision.candidate)
    storage.write_json(storage.join(vuri, layout.PROMOTION), asdict(decision))
    if decision.promoted and previous != decision.candidate:
        _point_current(models_uri, decision.use_case, decision.candidate, previous, decision.reason)
    return decision


def _point_current(models_uri: str, use_case: str, version: str, previous: str | None, reason: str) -> None:
    storage.write_json(current_uri(models_uri, use_case), {
        "version": version, "previous_version": previous, "reason": reason,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })


def rollback(models_uri: str, use_case: str, version: str) -> None:
    """Point current.json back at an older complete version."""
    load_version(models_uri, use_case, version)  # refuses a version that is missing or incomplete
    current = read_current(models_uri, use_case)
    _point_current(models_uri, use_case, version, current["version"] if current else None, "rollback")


def version_for_run(models_uri: str, use_case: str, run_id: str) -> str:
    """The newest complete version that a pipeline run produced."""
    made = [v["version"] for v in list_versions(models_uri, use_case) if v["manifest"]["run_id"] == run_id]
    if not made:
        raise LookupError(f"run {run_id!r} produced no complete {use_case} version")
    return made[-1]
