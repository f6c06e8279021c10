"""The serving core: load a promoted model from file:// or s3:// and answer one request.

No pyspark and no JVM: the forest is numpy arrays, the entity snapshot is JSON. A
`ModelStore` keeps the current model of each use case and swaps a new one in when
current.json changes; the swap is one reference assignment, so a request in flight finishes
on the model it started with.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pronostico.core import layout, storage
from pronostico.core.calibration import CalibratedForest, load_forest
from pronostico.core.layout import current_uri, version_uri
from pronostico.core.usecases import get_use_case
from pronostico.core.usecases.base import UseCase

log = logging.getLogger(__name__)


class NoModel(LookupError):
    """No promoted model for a use case yet."""


def new_prediction_id() -> str:
    """A UUIDv7: time-ordered, so that the log's primary key index stays append-only."""
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | (0x7 << 76) | (int.from_bytes(os.urandom(10)) & ((1 << 76) - 1))
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


@dataclass(frozen=True)
class ServingModel:
    """A model version's forest, answering from the entity state of `state_version` (itself, or a newer run's)."""

    use_case: UseCase
    version: str
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    forest: CalibratedForest
    snapshot: Any
    state_version: str = ""
    state_as_of: str = ""
    evaluation: dict[str, Any] | None = None  # the use case's newest prospective evaluation, when it has one

    @classmethod
    def load(cls, models_uri: str, use_case_name: str, version: str, state_version: str = "",
             evaluation: dict[str, Any] | None = None) -> ServingModel:
        use_case = get_use_case(use_case_name)
        uri = version_uri(models_uri, use_case_name, version)
        features = storage.read_json(storage.join(uri, layout.FEATURES))
        if features != list(use_case.feature_names):
            raise RuntimeError(f"{use_case_name} model {version} expects features {features}, "
                               f"but this code builds {list(use_case.feature_names)}")
        state_uri = version_uri(models_uri, use_case_name, state_version or version)
        state = storage.read_json(storage.join(state_uri, layout.ENTITIES))
        manifest = storage.read_json(storage.join(uri, layout.MANIFEST))
        return cls(use_case, version, manifest, storage.read_json(storage.join(uri, layout.METRICS)),
                   load_forest(uri, manifest),
                   use_case.load_snapshot(state), state_version or version, str(state.get("as_of") or ""),
                   evaluation)

    def parse(self, payload: Mapping[str, Any]) -> Any:
        """The request, or a RequestError naming the field that is wrong."""
        return self.use_case.parse_request(payload, self.snapshot)

    def answer(self, request: Any) -> dict[str, Any]:
        vectors = self.use_case.request_vectors(request, self.snapshot)
        # one pass over the trees for all of a request's vectors: the cost is per tree level, not per row
        probabilities = self.use_case.combine(request, list(self.forest.predict_proba(np.vstack(vectors))))
        return {"prediction_id": new_prediction_id(), "model_version": self.version,
                **self.use_case.answer(request, probabilities, self.snapshot)}

    def predict(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return self.answer(self.parse(payload))

    def entities(self) -> list[dict[str, Any]]:
        return self.use_case.entities(self.snapshot)

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, "created_at": self.manifest["created_at"],
                "metrics": self.metrics["model"], "baselines": self.metrics["baselines"],
                "holdout": self.metrics["split"], "entities_as_of": self.state_as_of,
                "state_version": self.state_version}


def load_current(models_uri: str, use_case_name: str) -> ServingModel:
    from pronostico.core.registry import latest_evaluation, read_current

    current = read_current(models_uri, use_case_name)
    if current is None:
        raise NoModel(f"no promoted {use_case_name} model under {models_uri}: run the pipeline first")
    return ServingModel.load(models_uri, use_case_name, current["version"], current["state_version"],
                             latest_evaluation(models_uri, use_case_name))


@dataclass
class ModelStore:
    """The current model of each use case in one process, refreshed when current.json changes."""

    models_uri: str
    use_cases: tuple[str, ...]
    models: dict[str, ServingModel] = field(default_factory=dict)
    _seen: dict[str, str] = field(default_factory=dict)  # use case -> etag of the current.json loaded
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, use_case: str) -> ServingModel:
        model = self.models.get(use_case)
        if model is None:
            raise NoModel(self.errors.get(use_case) or f"no {use_case} model is loaded yet")
        return model

    def refresh(self) -> list[str]:
        """Load any use case whose current.json changed; return those swapped in."""

        swapped = []
        for name in self.use_cases:
            uri = current_uri(self.models_uri, name)
            try:
                if not storage.exists(uri):
                    continue
                tag = storage.stat(uri).etag
                if self._seen.get(name) == tag:
                    continue
                self.models[name] = model = load_current(self.models_uri, name)
                self._seen[name] = tag
                self.errors.pop(name, None)
                swapped.append(name)
                log.info("model swapped in", extra={"use_case": name, "version": model.version,
                                                    "state_version": model.state_version})
            except Exception as error:  # keep serving the model we have; report why the new one failed
                self.errors[name] = f"{type(error).__name__}: {error}"
                log.exception("could not load the current %s model", name)
        return swapped

    def start_polling(self, every_seconds: float) -> threading.Thread:
        def poll() -> None:
            while True:
                time.sleep(every_seconds)
                self.refresh()

        thread = threading.Thread(target=poll, name="model-poller", daemon=True)
        thread.start()
        return thread
