"""The model registry: versions under models/<use_case>/versions/, current.json, and the evaluations.

current.json names what serves: `version`, the model (its forest), and `state_version`, the version whose entity
state (entities.json) it answers from. Only `promote_candidate` and `rollback` write it, in one write, after
everything else. The gate: a candidate is promoted when there is no champion, or when its log loss on its own
holdout is not worse than the champion's on the same rows. Only holdout rows dated after the champion's training
data count, so that the champion is not judged on rows it learned from. A candidate that is not promoted still
lends the champion its state, built from all the newer data (`_lend_state`): teams' ratings and assets' last bars
stay current whichever forest serves.

Every run also scores the serving champion prospectively (`evaluate_champion`): on the rows newer than anything its
own run saw, against the naive baselines fit on what it knew, with the gate's code. Each evaluation is kept under
models/<use_case>/evaluations/<run id>.json; their series is the champion's degradation curve.

The index, models/<use_case>/index.json, briefs every complete version and every evaluation, so that the models page
reads one object instead of all of them. It is a cache of those files: `update_index` rebuilds it from them (rereading
only the files whose etag changed), after a version or an evaluation is written, after each promotion and rollback,
and after pruning. Retention (`prune`) keeps the newest versions and every version that ever served.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from pronostico.core import evaluate, layout, storage
from pronostico.core.calibration import CalibratedForest, load_forest
from pronostico.core.config import load_settings
from pronostico.core.evaluate import MIN_FAIR_ROWS
from pronostico.core.layout import current_uri, version_uri
from pronostico.core.usecases import get_use_case
from pronostico.core.usecases.base import UseCase

EARLIER_VERSIONS = 10  # older versions scored on the windows after them, newest first: a forest each, cheap
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
    state_version: str | None = None  # whose entity state serves after this decision
    state_reason: str = ""


def read_current(models_uri: str, use_case: str) -> dict[str, Any] | None:
    """current.json, with `state_version` filled in for a pointer written before states were refreshed."""
    found = storage.read_if_exists(current_uri(models_uri, use_case))
    if found is None:
        return None
    current = json.loads(found)
    return {**current, "state_version": current.get("state_version") or current["version"]}


def champion_manifest(models_uri: str, use_case: str) -> dict[str, Any] | None:
    """The serving version's manifest: what it was trained on and with; None when nothing is serving."""
    current = read_current(models_uri, use_case)
    return _manifest(models_uri, use_case, current["version"]) if current else None


def newest_manifest(models_uri: str, use_case: str) -> dict[str, Any] | None:
    """The manifest of the newest complete version (versions are named by their UTC time), in one listing."""
    found = storage.list_objects(layout.versions_uri(models_uri, use_case), suffix=layout.MANIFEST)
    return storage.read_json(max(found, key=lambda info: info.uri).uri) if found else None


def list_versions(models_uri: str, use_case: str) -> list[dict[str, Any]]:
    """Complete versions (those with a manifest), oldest first, with their metrics and promotion decision; `current`
    marks the serving model, `serving_state` the version whose entity state it answers from."""
    base = layout.versions_uri(models_uri, use_case)
    pointer = read_current(models_uri, use_case)
    found = []
    for info in storage.list_objects(base, suffix=layout.MANIFEST):
        manifest = storage.read_json(info.uri)
        version_dir = info.uri.rsplit("/", 1)[0]
        metrics_uri = storage.join(version_dir, layout.METRICS)
        metrics = storage.read_json(metrics_uri) if storage.exists(metrics_uri) else {}
        promotion_uri = storage.join(version_dir, layout.PROMOTION)
        promotion = storage.read_json(promotion_uri) if storage.exists(promotion_uri) else None
        found.append(listed_version(manifest, metrics, promotion, pointer))
    return sorted(found, key=lambda v: v["version"])


def listed_version(manifest: dict[str, Any], metrics: dict[str, Any], promotion: dict[str, Any] | None,
                   current: dict[str, Any] | None) -> dict[str, Any]:
    """One version as `list_versions` and `indexed_versions` give it."""
    pointer = current or {}
    return {"version": manifest["version"], "created_at": manifest["created_at"],
            "current": manifest["version"] == pointer.get("version"),
            "serving_state": manifest["version"] == pointer.get("state_version"),
            "manifest": manifest, "metrics": metrics, "promotion": promotion}


@dataclass(frozen=True)
class Candidate:
    version: str
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    forest: CalibratedForest
    features: list[str]


def load_version(models_uri: str, use_case: str, version: str) -> Candidate:
    uri = version_uri(models_uri, use_case, version)
    if not storage.exists(storage.join(uri, layout.MANIFEST)):
        raise FileNotFoundError(f"no complete version {version} of {use_case} under {models_uri}")
    manifest = storage.read_json(storage.join(uri, layout.MANIFEST))
    return Candidate(version, manifest, storage.read_json(storage.join(uri, layout.METRICS)),
                     load_forest(uri, manifest),
                     storage.read_json(storage.join(uri, layout.FEATURES)))


def load_holdout(models_uri: str, use_case: str, version: str) -> pd.DataFrame:
    data = storage.read_bytes(layout.version_file(models_uri, use_case, version, layout.HOLDOUT))
    return pd.read_parquet(io.BytesIO(data))


def promote_candidate(models_uri: str, use_case_name: str, version: str, keep_versions: int | None = None) -> Decision:
    """Apply the gate and, if the candidate passes, point current.json at it; then prune the registry to
    `keep_versions` (default: PRONOSTICO_REGISTRY_KEEP_VERSIONS) and bring the index up to date."""
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
    decision = _record(models_uri, decision, champion_version)
    keep = load_settings().registry_keep_versions if keep_versions is None else keep_versions
    prune(models_uri, use_case_name, keep)  # updates the index with the promotion record, whatever it prunes
    return decision


def judge(use_case: UseCase, candidate: Candidate, champion: Candidate, holdout: pd.DataFrame) -> Decision:
    base = {"use_case": use_case.name, "candidate": candidate.version, "champion": champion.version}
    missing = sorted(set(champion.features) - set(holdout.columns))
    if missing:
        beats = all(v["beats_baseline"] for v in candidate.metrics["versus_baselines"].values())
        reason = (f"champion needs features this holdout lacks ({', '.join(missing)}); the candidate "
                  f"{'beats' if beats else 'does not beat'} every baseline")
        return Decision(**base, promoted=beats, reason=reason)
    fair = evaluate.rows_after(holdout, champion.manifest["training_range"]["end"])
    rows, candidate_p = evaluate.served_probabilities(use_case, candidate.forest, fair, candidate.features)
    if evaluate.too_small(len(rows)):
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
    now = datetime.now(UTC).isoformat(timespec="seconds")
    decision = replace(decision, state_version=decision.candidate) if decision.promoted \
        else _lend_state(models_uri, decision)
    decision = replace(decision, decided_at=now)
    vuri = version_uri(models_uri, decision.use_case, decision.candidate)
    storage.write_json(storage.join(vuri, layout.PROMOTION), asdict(decision))
    if decision.promoted and previous != decision.candidate:
        _point_current(models_uri, decision.use_case, decision.candidate, previous, decision.reason)
    elif not decision.promoted and decision.state_version == decision.candidate:
        current = read_current(models_uri, decision.use_case) or {}
        storage.write_json(current_uri(models_uri, decision.use_case), {
            **current, "state_version": decision.candidate, "state_reason": decision.state_reason,
            "state_refreshed_at": now, "served": served_by(current, decision.candidate)})
    return decision


def _lend_state(models_uri: str, decision: Decision) -> Decision:
    """The champion keeps its forest; it takes the candidate's state if that is newer and built the same way."""
    current = read_current(models_uri, decision.use_case)
    if not current:
        return decision
    serving = current["state_version"]
    reason = state_refusal(models_uri, decision.use_case, current["version"], serving, decision.candidate)
    if reason:
        return replace(decision, state_version=serving, state_reason=reason)
    as_of = _manifest(models_uri, decision.use_case, decision.candidate)["entities"]["as_of"]
    return replace(decision, state_version=decision.candidate,
                   state_reason=f"the champion serves the state of {decision.candidate} (as of {as_of})")


def state_refusal(models_uri: str, use_case: str, model_version: str, serving_state: str, candidate: str) -> str:
    """Why the candidate's state cannot serve beside the champion's forest; empty when it can."""
    model, newer, old = (_manifest(models_uri, use_case, v) for v in (model_version, candidate, serving_state))
    if newer["features"] != model["features"]:
        return f"state kept: {candidate} builds other features than the champion {model_version}"
    if (newer["entities"]["as_of"] or "") < (old["entities"]["as_of"] or ""):
        return (f"state kept: {candidate}'s data ends {newer['entities']['as_of']}, before the serving state's "
                f"{old['entities']['as_of']}")
    return ""


def _manifest(models_uri: str, use_case: str, version: str) -> dict[str, Any]:
    return storage.read_json(layout.version_file(models_uri, use_case, version, layout.MANIFEST))


def _point_current(models_uri: str, use_case: str, version: str, previous: str | None, reason: str) -> None:
    current = read_current(models_uri, use_case) or {}
    storage.write_json(current_uri(models_uri, use_case), {
        "version": version, "state_version": version, "previous_version": previous, "reason": reason,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"), "served": served_by(current, version),
    })


def served_by(current: dict[str, Any], *versions: str) -> list[str]:
    """current.json's record of every version that ever served, as model or state, with `versions` added: what
    retention never removes, kept here because a rollback leaves no promotion record."""
    named = {current.get("version"), current.get("state_version"), *current.get("served", []), *versions}
    return sorted(v for v in named if v)


def rollback(models_uri: str, use_case: str, version: str) -> None:
    """Point current.json back at an older complete version, with its own state (the next run refreshes it)."""
    load_version(models_uri, use_case, version)  # refuses a version that is missing or incomplete
    current = read_current(models_uri, use_case)
    _point_current(models_uri, use_case, version, current["version"] if current else None, "rollback")
    if not storage.exists(layout.version_file(models_uri, use_case, version, layout.MANIFEST)):
        # a prune removed it between the check above and the write: serve what served before (see _remove_version)
        _restore_current(models_uri, use_case, current)
        raise FileNotFoundError(f"version {version} of {use_case} was pruned while rolling back to it")
    update_index(models_uri, use_case)


def _restore_current(models_uri: str, use_case: str, current: dict[str, Any] | None) -> None:
    if current is None:
        storage.delete(current_uri(models_uri, use_case))
    else:
        storage.write_json(current_uri(models_uri, use_case), current)


def version_for_run(models_uri: str, use_case: str, run_id: str) -> str:
    """The newest complete version that a pipeline run produced."""
    made = [v["version"] for v in indexed_versions(fresh_index(models_uri, use_case), None)
            if v["manifest"]["run_id"] == run_id]
    if not made:
        raise LookupError(f"run {run_id!r} produced no complete {use_case} version")
    return made[-1]


# --- prospective evaluation -------------------------------------------------------------------------------------

def seen_until(manifest: dict[str, Any]) -> str:
    """The newest date of any row the version's run had: its holdout's end."""
    return str(manifest["holdout_range"]["end"])


def evaluate_version(use_case: UseCase, version: Candidate, frame: pd.DataFrame,
                     backtest_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One version on the rows newer than its data, against the baselines fit on the rows it had."""
    after = seen_until(version.manifest)
    entry: dict[str, Any] = {"model_version": version.version, "window": {"after": after, "start": None, "end": None},
                             "rows": 0, "min_rows": MIN_FAIR_ROWS}
    missing = sorted(set(version.features) - set(frame.columns))
    if missing:
        return {**entry, "status": "incompatible", "reason": f"needs features the data lacks: {', '.join(missing)}"}
    rows, probabilities = evaluate.answers_after(use_case, version.forest, version.features, frame, after)
    entry.update(rows=len(rows), window={"after": after, "start": str(rows["date"].min()) if len(rows) else None,
                                         "end": str(rows["date"].max()) if len(rows) else None})
    if evaluate.too_small(len(rows)):
        return {**entry, "status": "too_small",
                "reason": f"{len(rows)} rows newer than {after} (need {MIN_FAIR_ROWS}): not scored"}
    scores = evaluate.score_window(use_case, rows, probabilities, frame[frame["date"] <= after])
    backtest = use_case.backtest(rows, probabilities, **(backtest_options or {}))
    return {**entry, "status": "scored", **scores, **({"backtest": backtest} if backtest else {})}


def evaluate_champion(models_uri: str, use_case: UseCase, frame: pd.DataFrame, run_id: str,
                      backtest_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Score the serving champion (and, briefly, earlier versions) on what came after them; None without one.

    `frame` holds the feature rows of all the run's data. The evaluation is written to
    models/<use_case>/evaluations/<run id>.json.
    """
    current = read_current(models_uri, use_case.name)
    if current is None:
        return None
    champion = load_version(models_uri, use_case.name, current["version"])
    evaluation = {"use_case": use_case.name, "run_id": run_id,
                  "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                  **evaluate_version(use_case, champion, frame, backtest_options),
                  "earlier_versions": _earlier_versions(models_uri, use_case, frame, champion.version)}
    storage.write_json(layout.evaluation_uri(models_uri, use_case.name, run_id), evaluation)
    return evaluation


def _earlier_versions(models_uri: str, use_case: UseCase, frame: pd.DataFrame, champion: str) -> list[dict[str, Any]]:
    """The log loss of each earlier version on the rows after its own data (no backtest, no per-class figures)."""
    listed = indexed_versions(fresh_index(models_uri, use_case.name), None)
    found = [v["version"] for v in listed if v["version"] < champion]
    summaries = []
    for version in reversed(found[-EARLIER_VERSIONS:]):
        scored = evaluate_version(use_case, load_version(models_uri, use_case.name, version), frame)
        best = scored.get("best_baseline")
        summaries.append({key: scored[key] for key in ("model_version", "window", "rows", "status")} | {
            "log_loss": scored["model"]["log_loss"] if "model" in scored else None,
            "best_baseline": best,
            "best_baseline_log_loss": scored["baselines"][best]["log_loss"] if best else None})
    return summaries


def list_evaluations(models_uri: str, use_case: str) -> list[dict[str, Any]]:
    """Every evaluation of the use case, oldest first."""
    found = [storage.read_json(info.uri)
             for info in storage.list_objects(layout.evaluations_uri(models_uri, use_case), suffix=".json")]
    return sorted(found, key=lambda e: (e["evaluated_at"], e["run_id"]))


def latest_evaluation(models_uri: str, use_case: str) -> dict[str, Any] | None:
    """The newest evaluation, read alone: every worker asks at each model swap, and the series only grows."""
    found = storage.list_objects(layout.evaluations_uri(models_uri, use_case), suffix=".json")
    return storage.read_json(max(found, key=lambda info: (info.modified, info.uri)).uri) if found else None


# --- the index ----------------------------------------------------------------------------------------------------

INDEX_FORMAT = 3
INDEX_MANIFEST = ("version", "use_case", "created_at", "run_id", "data_range", "training_range", "holdout_range",
                  "entities")  # what listing a version needs of its manifest: the rest (inputs, tuning) is big
# of its metrics, and of its baselines' not the calibration bins: only the model's are drawn, and they are the bulk
INDEX_METRICS = ("model", "baselines", "best_baseline", "split")
INDEX_SOURCES = (layout.MANIFEST, layout.METRICS, layout.PROMOTION)  # a version's files the index briefs
INDEX_ATTEMPTS = 3
HEADLINE_SCORES = ("log_loss", "accuracy", "rps")  # what a table of versions shows of the model and its best baseline


def read_index(models_uri: str, use_case: str, decode: Callable[[bytes], Any] = json.loads) -> dict[str, Any] | None:
    """The stored index, in one read; None when there is none (or it is of another format). The web tier decodes it
    with a faster parser, and leaves the versions' metrics undecoded: the index of a long registry holds megabytes."""
    found = storage.read_if_exists(layout.index_uri(models_uri, use_case))
    index = decode(found) if found is not None else None
    return index if index and index.get("format") == INDEX_FORMAT else None


def fresh_index(models_uri: str, use_case: str) -> dict[str, Any]:
    """The index as the files stand now, built in memory on the stored one (only changed files are read)."""
    return build_index(models_uri, use_case, read_index(models_uri, use_case))


def update_index(models_uri: str, use_case: str, rebuild: bool = False) -> dict[str, Any]:
    """Bring models/<use_case>/index.json up to date with the version and evaluation files, and write it.

    Only files whose etag changed since the stored index are read again (every file with `rebuild`). After writing,
    the files are listed again: if another writer (a CLI rollback or prune beside the DAG) changed them meanwhile,
    the index is built again, so the index written last is never older than the files.
    """
    previous = None if rebuild else read_index(models_uri, use_case)
    for _ in range(INDEX_ATTEMPTS):
        index = build_index(models_uri, use_case, previous)
        compact = json.dumps(index, separators=(",", ":"), default=str)  # a third of write_json's indented size
        storage.write_text(layout.index_uri(models_uri, use_case), compact, "application/json")
        if _index_sources(index) == _listed_sources(models_uri, use_case):
            break
        previous = index
    return index


def index_covers(index: dict[str, Any], versions: set[str], run_id: str = "") -> bool:
    """Whether the index knows these versions and this evaluation (none: it knows no evaluation either): what a web
    worker serves. One that does not is older than the files (written by hand, or by a writer that skipped
    `update_index`), found out with no read."""
    known = {e["manifest"]["version"] for e in index["versions"]}
    runs = {e["point"]["run_id"] for e in index["evaluations"]}
    return versions <= known and (run_id in runs if run_id else not runs)


def build_index(models_uri: str, use_case: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The index of the files as they are listed now, taking from `previous` each entry whose files are unchanged."""
    versions, evaluations = _listed_sources(models_uri, use_case)
    old_versions = {e["folder"]: e for e in (previous or {}).get("versions", [])}
    old_evaluations = {e["name"]: e for e in (previous or {}).get("evaluations", [])}
    version_entries = [
        old if (old := old_versions.get(folder)) and old["sources"] == files
        else _version_entry(models_uri, use_case, folder, files) for folder, files in sorted(versions.items())]
    evaluation_entries = [
        old if (old := old_evaluations.get(name)) and old["etag"] == etag
        else _evaluation_entry(models_uri, use_case, name, etag) for name, etag in sorted(evaluations.items())]
    return {"format": INDEX_FORMAT, "use_case": use_case,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": sorted((e for e in version_entries if e), key=lambda e: e["manifest"]["version"]),
            "evaluations": sorted((e for e in evaluation_entries if e), key=lambda e: _evaluation_order(e["point"]))}


def _listed_sources(models_uri: str, use_case: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The etags of what the index briefs, from two listings: per complete version folder, of each of its
    INDEX_SOURCES; per evaluation file, its own."""
    base = layout.versions_uri(models_uri, use_case)
    versions: dict[str, dict[str, str]] = {}
    for info in storage.list_objects(base, suffix=INDEX_SOURCES):
        folder, _, name = info.uri[len(base) + 1:].partition("/")
        if name in INDEX_SOURCES:  # right in the version's folder, not deeper
            versions.setdefault(folder, {})[name] = info.etag
    evaluations = layout.evaluations_uri(models_uri, use_case)
    return ({folder: files for folder, files in versions.items() if layout.MANIFEST in files},
            {info.uri[len(evaluations) + 1:]: info.etag for info in storage.list_objects(evaluations, ".json")})


def _index_sources(index: dict[str, Any]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    return ({e["folder"]: e["sources"] for e in index["versions"]},
            {e["name"]: e["etag"] for e in index["evaluations"]})


def _read_json_if_exists(uri: str) -> Any:
    found = storage.read_if_exists(uri)
    return json.loads(found) if found is not None else None


def _version_entry(models_uri: str, use_case: str, folder: str, files: dict[str, str]) -> dict[str, Any] | None:
    """A version in brief; None when it vanished since the listing (pruned meanwhile)."""
    uri = version_uri(models_uri, use_case, folder)
    manifest = _read_json_if_exists(storage.join(uri, layout.MANIFEST))
    if manifest is None:
        return None
    metrics = (_read_json_if_exists(storage.join(uri, layout.METRICS)) if layout.METRICS in files else None) or {}
    promotion = _read_json_if_exists(storage.join(uri, layout.PROMOTION)) if layout.PROMOTION in files else None
    return {"folder": folder, "sources": files, "manifest": _pick(manifest, INDEX_MANIFEST),
            "metrics": _metrics_brief(metrics), "promotion": promotion, "headline": version_headline(metrics)}


def _evaluation_entry(models_uri: str, use_case: str, name: str, etag: str) -> dict[str, Any] | None:
    """An evaluation's point on the trend, and its brief as JSON text: a string decodes at memory speed, so a web
    worker parses only the briefs it shows and passes the others through as they are."""
    evaluation = _read_json_if_exists(storage.join(layout.evaluations_uri(models_uri, use_case), name))
    if evaluation is None:
        return None
    brief = json.dumps(evaluation_brief(evaluation), separators=(",", ":"), default=str)
    return {"name": name, "etag": etag, "point": evaluation_point(evaluation),
            "backtest": bool(evaluation.get("backtest")), "brief": brief}


def _pick(document: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: document[key] for key in keys if key in document}


def _metrics_brief(metrics: dict[str, Any]) -> dict[str, Any]:
    brief = _pick(metrics, INDEX_METRICS)
    if "baselines" in brief:
        brief["baselines"] = {name: {k: v for k, v in scores.items() if k != "calibration"}
                              for name, scores in brief["baselines"].items()}
    return brief


def version_best_baseline(metrics: dict[str, Any]) -> str | None:
    """The baseline a version is measured against: the one recorded, or, for metrics from before it was, the best."""
    return metrics.get("best_baseline") or evaluate.best_baseline(metrics.get("baselines", {}))


def version_headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a table of versions shows of a version's holdout metrics: the model's HEADLINE_SCORES and its best
    baseline's, the rows scored and whether calibration bins were recorded; not the per-class figures, nor the bins."""
    model = metrics.get("model") or {}
    best = version_best_baseline(metrics)
    return {"model": _pick(model, HEADLINE_SCORES), "rows": model.get("rows"),
            "calibrated": bool(model.get("calibration")), "best_baseline": best,
            "baseline": _pick(metrics["baselines"][best], HEADLINE_SCORES) if best else {},
            "holdout_rows": metrics.get("split", {}).get("holdout_rows")}


def _evaluation_order(evaluation: dict[str, Any]) -> tuple[str, str]:
    return evaluation["evaluated_at"], evaluation["run_id"]


def evaluation_point(evaluation: dict[str, Any]) -> dict[str, Any]:
    """One point of the champion's degradation curve; log losses are null unless the window was scored."""
    scored = evaluation["status"] == "scored"
    best = evaluation.get("best_baseline") or (
        evaluate.best_baseline(evaluation.get("baselines", {})) if scored else None)
    return {"evaluated_at": evaluation["evaluated_at"], "run_id": evaluation["run_id"],
            "model_version": evaluation["model_version"], "window_end": (evaluation.get("window") or {}).get("end"),
            "rows": evaluation["rows"], "status": evaluation["status"],
            "log_loss": evaluation["model"]["log_loss"] if scored else None,
            "best_baseline": best,
            "best_baseline_log_loss": evaluation["baselines"][best]["log_loss"] if scored and best else None}


def evaluation_brief(evaluation: dict[str, Any]) -> dict[str, Any]:
    """An evaluation without its backtest's equity curves, the bulk of it (the newest one's are read alone)."""
    if "backtest" not in evaluation:
        return evaluation
    return {**evaluation, "backtest": {k: v for k, v in evaluation["backtest"].items() if k != "curves"}}


def indexed_versions(index: dict[str, Any], current: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The complete versions as `list_versions` gives them, oldest first, from the index: their manifests and metrics
    in brief (INDEX_MANIFEST, INDEX_METRICS)."""
    return [listed_version(e["manifest"], e["metrics"], e["promotion"], current) for e in index["versions"]]


def indexed_headlines(index: dict[str, Any], current: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The complete versions as `indexed_versions` gives them, but with their `version_headline` in place of their
    metrics, which stay undecoded in an index read lazily."""
    listed = []
    for entry in index["versions"]:
        version = listed_version(entry["manifest"], {}, entry["promotion"], current)
        del version["metrics"]
        listed.append({**version, "headline": entry["headline"]})
    return listed


def indexed_evaluations(index: dict[str, Any]) -> list[dict[str, Any]]:
    """The evaluations in brief, oldest first, as `list_evaluations` gives them but for the curves."""
    return [json.loads(e["brief"]) for e in index["evaluations"]]


def indexed_points(index: dict[str, Any]) -> list[dict[str, Any]]:
    """The degradation curve, oldest first: `evaluation_point` of each evaluation."""
    return [e["point"] for e in index["evaluations"]]


def indexed_briefs(index: dict[str, Any]) -> list[str]:
    """Each evaluation's brief as JSON text, oldest first."""
    return [e["brief"] for e in index["evaluations"]]


def newest_brief(index: dict[str, Any], scored: bool = False, backtest: bool = False) -> dict[str, Any] | None:
    """The newest evaluation in brief; with `scored`, the newest scored one; with `backtest`, one with a backtest."""
    for entry in reversed(index["evaluations"]):
        if (not scored or entry["point"]["status"] == "scored") and (not backtest or entry["backtest"]):
            return json.loads(entry["brief"])
    return None


def indexed_evaluation(models_uri: str, use_case: str, index: dict[str, Any], run_id: str) -> dict[str, Any]:
    """One evaluation of the index in full, curves and all."""
    name = next(e["name"] for e in index["evaluations"] if e["point"]["run_id"] == run_id)
    return storage.read_json(storage.join(layout.evaluations_uri(models_uri, use_case), name))


# --- retention ----------------------------------------------------------------------------------------------------

ABANDONED_AFTER_SECONDS = 24 * 3600  # an incomplete version untouched this long is a failed run's, not being written


def served_versions(index: dict[str, Any], current: dict[str, Any] | None) -> set[str]:
    """Every version that ever served, as model or as state: current.json's record and the promotion records."""
    pointer = current or {}
    served = set(served_by(pointer)) | {v for v in [pointer.get("previous_version")] if v}
    for entry in index["versions"]:
        record = entry["promotion"] or {}
        if record.get("promoted"):
            served.add(record["candidate"])
        served |= {v for v in (record.get("state_version"), record.get("champion")) if v}
    return served


def prune_plan(models_uri: str, use_case: str, keep: int) -> list[str]:
    """The version folders retention removes: complete versions older than the newest `keep` that never served,
    and incomplete ones older than the newest complete version and untouched for ABANDONED_AFTER_SECONDS. Nothing
    when `keep` is 0 (keep every version)."""
    if keep <= 0:
        return []
    index = fresh_index(models_uri, use_case)
    complete = [e["folder"] for e in index["versions"]]
    kept = set(complete[-keep:]) | served_versions(index, read_current(models_uri, use_case))
    newest = max(complete, default="")
    folders = [uri.rsplit("/", 1)[1] for uri in storage.list_folders(layout.versions_uri(models_uri, use_case))]
    return [folder for folder in folders if folder not in kept and (
        folder in complete or (folder < newest and _abandoned(version_uri(models_uri, use_case, folder))))]


def _abandoned(folder_uri: str) -> bool:
    newest = max((info.modified for info in storage.list_objects(folder_uri)), default=0.0)
    return time.time() - newest > ABANDONED_AFTER_SECONDS


def prune(models_uri: str, use_case: str, keep: int, dry_run: bool = False) -> list[str]:
    """Remove what `prune_plan` names (only name it with `dry_run`), then bring the index up to date."""
    doomed = prune_plan(models_uri, use_case, keep)
    if dry_run:
        return doomed
    removed = [folder for folder in doomed if _remove_version(models_uri, use_case, folder)]
    update_index(models_uri, use_case)
    return removed


def _remove_version(models_uri: str, use_case: str, folder: str) -> bool:
    """Delete one version folder, manifest first so that no reader meets a complete version half gone.

    current.json is read again just before: a rollback to this version since the plan keeps it. A rollback that
    lands after this read finds the manifest gone once it has written current.json, and undoes itself (`rollback`).
    """
    if folder in served_by(read_current(models_uri, use_case) or {}):
        return False
    storage.delete(layout.version_file(models_uri, use_case, folder, layout.MANIFEST))
    storage.delete_prefix(version_uri(models_uri, use_case, folder))
    return True
