"""Live results: what really happened after each logged prediction, and how each model version scores on it.

Each pipeline run writes, per use case, the events of its data to `layout.observed_events_uri` (a JSON document,
below); the log shipper loads it into `observed_events` whenever it changes, and the views `prediction_live_results`
and `model_live_scores` (migration 0003) join it to the prediction log. An event resolves the predictions about its
subject (matchups: home and away team; assets: the symbol and '') whose as_of lies in [earliest_as_of, event_date),
and a prediction is resolved by the first such event.

    {"use_case": "matchups", "run_id": "...", "written_at": "...",
     "events": [{"subject_a": "Brazil", "subject_b": "Argentina", "event_date": "2026-03-26",
                 "earliest_as_of": "2025-03-26", "outcome": "home_win"}, ...]}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from pronostico.prediction_log.schema import EVENT_FIELDS, PROBABILITY_CLASSES, observed_events

SUBJECT_LENGTH = observed_events.c.subject_a.type.length


class InvalidEvents(ValueError):
    """An events document the shipper cannot load: skipped until the file changes."""


def parse_events(document: Any, use_case: str) -> list[dict[str, Any]]:
    """The events of a document as rows for `schema.upsert_events`, one per key (the last one wins).

    All or nothing: one bad event refuses the document, so that the table never holds half a run.
    """
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise InvalidEvents("an events file must be a JSON object with a list of events")
    if document.get("use_case") != use_case:
        raise InvalidEvents(f"the events file is for {document.get('use_case')!r}, not {use_case!r}")
    rows: dict[tuple[str, str, date], dict[str, Any]] = {}
    for number, event in enumerate(document["events"]):
        try:
            row = parse_event(event)
        except (InvalidEvents, ValueError, TypeError, KeyError) as error:
            raise InvalidEvents(f"event {number}: {error}") from error
        rows[(row["subject_a"], row["subject_b"], row["event_date"])] = row
    return list(rows.values())


def parse_event(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise InvalidEvents("not a JSON object")
    row = {name: event[name] for name in EVENT_FIELDS}
    for name in ("subject_a", "subject_b"):
        if not isinstance(row[name], str) or len(row[name]) > SUBJECT_LENGTH:
            raise InvalidEvents(f"{name} must be a string of at most {SUBJECT_LENGTH} characters")
    if not row["subject_a"]:
        raise InvalidEvents("subject_a is empty")
    if row["outcome"] not in PROBABILITY_CLASSES:  # the views score it by its probability column
        raise InvalidEvents(f"outcome {row['outcome']!r} is none of {', '.join(PROBABILITY_CLASSES)}")
    row["event_date"] = date.fromisoformat(row["event_date"])
    row["earliest_as_of"] = date.fromisoformat(row["earliest_as_of"])
    if row["earliest_as_of"] > row["event_date"]:
        raise InvalidEvents("earliest_as_of is after event_date")
    return row


def live_results(connection: sa.Connection, use_case: str | None = None) -> list[dict[str, Any]]:
    """The resolved predictions (prediction_live_results), oldest first."""
    where = "WHERE use_case = :use_case" if use_case else ""
    sql = f"SELECT * FROM prediction_live_results {where} ORDER BY created_at, prediction_id"
    return [dict(row) for row in connection.execute(sa.text(sql), {"use_case": use_case}).mappings()]


def live_scores(connection: sa.Connection, use_case: str | None = None) -> list[dict[str, Any]]:
    """Each model version's live hit rate and log loss (model_live_scores), by use case and version, as plain JSON
    values: MariaDB's decimals and datetimes and SQLite's strings come out the same."""
    where = "WHERE use_case = :use_case" if use_case else ""
    sql = f"SELECT * FROM model_live_scores {where} ORDER BY use_case, model_version"
    return [score_row(row) for row in connection.execute(sa.text(sql), {"use_case": use_case}).mappings()]


def score_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"use_case": row["use_case"], "model_version": row["model_version"],
            "predictions": int(row["predictions"]), "resolved": int(row["resolved"] or 0),
            "hits": int(row["hits"] or 0),
            "hit_rate": None if row["hit_rate"] is None else float(row["hit_rate"]),
            "log_loss": None if row["log_loss"] is None else float(row["log_loss"]),
            "first_prediction_at": timestamp(row["first_prediction_at"]),
            "last_prediction_at": timestamp(row["last_prediction_at"])}


def timestamp(value: Any) -> str | None:
    """'YYYY-MM-DD HH:MM:SS' from MariaDB's datetime or SQLite's text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)[:19]
