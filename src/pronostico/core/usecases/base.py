"""What every use case declares: raw schemas, validation, features, label, entities, requests, answers and how
they are shown and logged.

A use case is the only place its facts live: the convert job, training, serving, the form, the OpenAPI document,
the CLI, the analytics page and the prediction log's row mapping all read them from here. Nothing here imports
pyspark: the web tier imports use cases too. Validation rules are Spark SQL expressions held as strings; the convert
job evaluates them, the web tier never does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

COLUMN_KINDS = ("string", "int", "long", "double", "date", "bool")
MAX_TEXT_LENGTH = 100


@dataclass(frozen=True)
class ColumnSpec:
    """A raw CSV column the use case reads; `required` means a blank value makes the row bad."""

    name: str
    kind: str
    required: bool = True
    date_format: str = "yyyy-MM-dd"

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise ValueError(f"{self.name}: unknown column kind {self.kind!r}")


@dataclass(frozen=True)
class RawSchema:
    """One accepted CSV layout and how it maps onto the use case's canonical dataset.

    `checks` are (reason, Spark SQL condition over the typed columns that is true for a bad
    row). `canonical` maps each canonical column to a Spark SQL expression over typed columns.
    """

    name: str
    columns: tuple[ColumnSpec, ...]
    checks: tuple[tuple[str, str], ...]
    canonical: tuple[tuple[str, str], ...]
    priority: int = 0  # when two files hold the same key, the higher priority row is kept

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def matches(self, header: Sequence[str]) -> bool:
        return set(self.column_names) <= {h.strip() for h in header}

    def missing(self, header: Sequence[str]) -> list[str]:
        present = {h.strip() for h in header}
        return [c for c in self.column_names if c not in present]


class RequestError(ValueError):
    """A prediction request a user got wrong: answered with a 4xx naming the field."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


@dataclass(frozen=True)
class InputField:
    """How a form, CLI or API client supplies one input (drives the form, OpenAPI, the CLI and validation)."""

    name: str
    kind: str  # "entity" | "bool" | "choice"
    label: str
    required: bool = True
    choices: tuple[str, ...] = ()
    default: Any = None
    choice_labels: Mapping[str, str] = field(default_factory=dict)  # what the form shows for each choice
    hint: str = ""  # a smaller note beside the label in the form


@dataclass(frozen=True)
class TopList:
    """One "most asked" list of the analytics page: the log columns it groups by, from a view the migrations made."""

    key: str  # its name in /api/v1/analytics
    view: str
    columns: tuple[str, ...]
    title: str
    drawn: bool = True  # a chart on the page; otherwise only in the JSON (and QuickSight)


@dataclass(frozen=True)
class Presentation:
    """How the form, the answer panel and the analytics page show a use case."""

    title: str  # the card's heading
    icon: str  # a file under app/static/icons/
    submit: str  # the form's button
    as_of_label: str  # "teams as of", before the snapshot's date
    holdout_unit: str  # what one holdout row is: "matches", "bars"
    class_labels: Mapping[str, str]  # per class, a str.format template over the answer's fields
    baseline_labels: Mapping[str, str]  # per naive baseline, what it predicts in words
    entity_separator: str = ""  # shown between two entity fields ("vs")
    headline_badge: bool = False  # the answer's class as a coloured badge rather than coloured text
    color: str = "#2563eb"  # its colour in the analytics charts
    top_lists: tuple[TopList, ...] = ()


class UseCase:
    """The contract a use-case module implements; see matchups.py and assets.py."""

    name: ClassVar[str]
    dataset: ClassVar[str]  # canonical dataset name under processed/<use_case>/
    classes: ClassVar[tuple[str, ...]]  # label index order; Spark's label i is classes[i]
    schemas: ClassVar[tuple[RawSchema, ...]]
    key_columns: ClassVar[tuple[str, ...]]  # duplicate key of the canonical dataset
    partition_column: ClassVar[str]
    partition_expr: ClassVar[str]  # Spark SQL that derives the partition column
    entity_columns: ClassVar[tuple[str, ...]] = ()  # names that `aliases` normalises
    aliases: ClassVar[Mapping[str, str]] = {}
    near_duplicate_days: ClassVar[int] = 0  # >0: the same key a few days apart is one event
    canonical_types: ClassVar[Mapping[str, str]]  # canonical column -> Spark SQL type
    feature_names: ClassVar[tuple[str, ...]]
    input_fields: ClassVar[tuple[InputField, ...]]
    entity_kind: ClassVar[str]  # "team" | "symbol"
    entities_key: ClassVar[str]  # where entities.json keeps them: "teams" | "symbols"
    frame_extras: ClassVar[Mapping[str, str]]  # non-feature columns of the feature frame: Spark types
    history_group: ClassVar[str | None] = None  # canonical column whose groups are independent histories
    near_duplicate_pair: ClassVar[tuple[str, str] | None] = None  # an unordered pair of key columns (either order)
    entity_key: ClassVar[str]  # the field of each `entities()` item that names it
    answer_fields: ClassVar[Mapping[str, Mapping[str, Any]]]  # the answer's own fields: JSON schema of each
    answer_class_field: ClassVar[str]  # the answer field that carries the predicted class
    log_columns: ClassVar[tuple[str, ...]]  # answer fields the prediction log keeps, each a column of its own
    presentation: ClassVar[Presentation]
    display_order: ClassVar[int] = 100  # where its card, charts and lists come among the use cases
    ordered_classes: ClassVar[bool] = False  # classes run from one end to the other: scored with the RPS too
    # baselines that are real models, not naive rules: reported beside the naive ones, never gating a promotion
    strong_baselines: ClassVar[tuple[str, ...]] = ()
    calibrated: ClassVar[bool] = False  # a temperature fitted before the holdout tempers the forest's answers

    # --- training side (pandas; run inside Spark with applyInPandas) ---
    def feature_frame(self, canonical: pd.DataFrame) -> pd.DataFrame:
        """Feature rows for training: features, `label`, `date`, `train_weight`, `mirror`."""
        raise NotImplementedError

    def entity_snapshot(self, canonical: pd.DataFrame) -> dict[str, Any]:
        raise NotImplementedError

    def merge_snapshots(self, parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """One snapshot from the snapshots of independent history groups."""
        merged: dict[str, Any] = {"as_of": max((p["as_of"] for p in parts), default=""), self.entities_key: {}}
        for part in parts:
            merged[self.entities_key].update(part[self.entities_key])
        return merged

    def entity_count(self, snapshot: Mapping[str, Any]) -> int:
        return len(snapshot[self.entities_key])

    def original_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature rows that stand for real events (not augmented copies)."""
        return frame

    def fold_mirrors(self, frame: pd.DataFrame, probabilities: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """The original rows and the probabilities the web tier would answer for them."""
        return frame, probabilities

    def baselines(self, train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, np.ndarray]:
        """Class probabilities of each baseline (naive, then `strong_baselines`) for the holdout rows, fit on train."""
        raise NotImplementedError

    def backtest(self, rows: pd.DataFrame, probabilities: np.ndarray, *, cost_bps: float = 10.0,
                 short_on_sell: bool = False) -> dict[str, Any] | None:
        """What acting on the answers for these rows would have earned after costs (basis points a side); None for
        a use case with no trading rule."""
        return None

    def observed_events(self, frame: pd.DataFrame, since: str) -> list[dict[str, Any]]:
        """The real events dated from `since` that resolve logged predictions (prediction_log's live results).

        Each is {"subject_a", "subject_b", "event_date", "earliest_as_of", "outcome"}: it resolves a prediction
        about (subject_a, subject_b) whose as_of lies in [earliest_as_of, event_date), the first such event winning.
        """
        return []

    # --- serving side (pure Python + numpy) ---
    def load_snapshot(self, snapshot: Mapping[str, Any]) -> Any:
        """Parse entities.json once per model load into what requests read."""
        raise NotImplementedError

    def entities(self, snapshot: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def parse_request(self, payload: Mapping[str, Any], snapshot: Any) -> Any:
        raise NotImplementedError

    def request_vectors(self, request: Any, snapshot: Any) -> list[np.ndarray]:
        """Feature vectors whose forest outputs `combine` turns into the answer."""
        raise NotImplementedError

    def combine(self, request: Any, probabilities: list[np.ndarray]) -> np.ndarray:
        return probabilities[0]

    def answer(self, request: Any, probabilities: np.ndarray, snapshot: Any) -> dict[str, Any]:
        raise NotImplementedError

    # --- presentation (the form, the CLI) ---
    def class_label(self, name: str, answer: Mapping[str, Any]) -> str:
        template = self.presentation.class_labels.get(name, name)
        return template.format(**{k: v for k, v in answer.items() if isinstance(v, str)})

    def headline(self, answer: Mapping[str, Any]) -> str:
        """The answer in a few words: the most likely class, labelled."""
        return self.class_label(answer[self.answer_class_field], answer)

    def entity_hint(self, entity: Mapping[str, Any]) -> str:
        """What the form's picker shows beside an entity's name."""
        return ""

    def describe(self, answer: Mapping[str, Any]) -> str:
        """What the answer is about, in one line (the answer panel's eyebrow, the CLI's title)."""
        return ", ".join(str(answer[name]) for name in self.log_columns if answer.get(name) not in (None, ""))


def class_distribution(labels: np.ndarray, n_classes: int, smoothing: float = 1.0) -> np.ndarray:
    """Laplace-smoothed class frequencies, so that no baseline ever predicts a hard zero."""
    counts = np.bincount(labels.astype(int), minlength=n_classes).astype(float) + smoothing
    return counts / counts.sum()


def conditional_distribution(groups_train: np.ndarray, labels: np.ndarray, groups_eval: np.ndarray,
                             n_classes: int) -> np.ndarray:
    """Empirical class frequencies per group, learned on train and looked up for eval rows."""
    prior = class_distribution(labels, n_classes)
    table = {g: class_distribution(labels[groups_train == g], n_classes) for g in np.unique(groups_train)}
    return np.vstack([table.get(g, prior) for g in groups_eval]) if len(groups_eval) else np.empty((0, n_classes))


def closest(name: str, choices: Sequence[str], limit: int = 5) -> list[str]:
    import difflib

    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.6)
    prefix = [c for c in choices if c.lower().startswith(name.lower()[:3])] if len(name) >= 3 else []
    ordered = [lowered[h] for h in hits] + [p for p in prefix if lowered.get(p.lower()) not in hits]
    return list(dict.fromkeys(ordered))[:limit]
