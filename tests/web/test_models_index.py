"""The models page and its JSON read the registry's index, and answer exactly what the full read of every version and
evaluation file answers. The registry is written file by file, as training and promotion leave it (no Spark)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app import models
from app.runtime import dumps
from benchmarks.models_index import write_registry
from pronostico.core import layout, registry, storage
from pronostico.core.usecases import USE_CASES
from tests.web.conftest import app_config

VERSIONS = 8
PATHS = [f"/api/v1/models/{name}/{part}" for name in USE_CASES for part in ("versions", "evaluations")] + \
    ["/api/v1/models/assets/backtest"]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = (tmp_path_factory.mktemp("registry") / "models").as_uri()
    write_registry(uri, VERSIONS)
    return uri


@pytest.fixture
def models_uri(written: str, tmp_path: Path) -> str:
    """A private copy of the written registry, without an index."""
    import shutil

    shutil.copytree(storage.local_path(written), tmp_path / "models")
    return (tmp_path / "models").as_uri()


@pytest.fixture
def open_app(settings) -> Iterator[Any]:
    from app import create_app

    made = []

    def open_on(uri: str) -> Any:
        made.append(create_app(app_config(uri, settings.home)))
        return made[-1]

    yield open_on
    for application in made:
        application.extensions["pronostico"].spool.close()


def answers(application: Any) -> dict[str, Any]:
    client = application.test_client()
    found = {path: client.get(path).get_json() for path in PATHS}
    found["/models"] = client.get("/models").get_data(as_text=True)
    return found


def full_read(uri: str, name: str) -> dict[str, Any]:
    """The JSON of /versions and /evaluations as the app built it before the index: from every file."""
    evaluations = registry.list_evaluations(uri, name)
    return {f"/api/v1/models/{name}/versions": models.versions_report(name, registry.list_versions(uri, name)),
            f"/api/v1/models/{name}/evaluations": {
                "use_case": name, "evaluations": [registry.evaluation_brief(e) for e in evaluations],
                "trend": [registry.evaluation_point(e) for e in evaluations]}}


def test_the_index_changes_nothing_the_page_and_its_json_answer(models_uri, open_app) -> None:
    assert all(registry.read_index(models_uri, name) is None for name in USE_CASES)
    without = answers(open_app(models_uri))
    for name in USE_CASES:
        registry.update_index(models_uri, name)
    with_index = answers(open_app(models_uri))
    assert with_index == without
    for name in USE_CASES:
        for path, expected in full_read(models_uri, name).items():
            assert with_index[path] == json.loads(dumps(expected))
        assert len(with_index[f"/api/v1/models/{name}/versions"]["versions"]) == VERSIONS
    newest = max(registry.list_evaluations(models_uri, "assets"),
                 key=lambda e: (e["status"] == "scored", e["evaluated_at"]))
    assert with_index["/api/v1/models/assets/backtest"]["evaluation"]["backtest"]["curves"] == \
        newest["backtest"]["curves"]  # the curves the index leaves out, read from the evaluation itself


def test_the_web_tier_reads_the_index_as_stored_but_leaves_each_versions_metrics_as_json(models_uri) -> None:
    """decode_index names the index's keys for msgspec, which drops any other: a key the registry adds must be named."""
    for name in USE_CASES:
        registry.update_index(models_uri, name)
        stored = registry.read_index(models_uri, name)
        lazy = registry.read_index(models_uri, name, decode=models.decode_index)
        assert all(isinstance(e["metrics"], msgspec.Raw) for e in lazy["versions"])
        assert [msgspec.json.decode(e["metrics"]) for e in lazy["versions"]] == \
            [e["metrics"] for e in stored["versions"]]
        assert {**lazy, "versions": [{**e, "metrics": None} for e in lazy["versions"]]} == \
            {**stored, "versions": [{**e, "metrics": None} for e in stored["versions"]]}


def test_with_an_index_a_cache_miss_reads_it_and_current_json_only(models_uri, open_app, monkeypatch) -> None:
    for name in USE_CASES:
        registry.update_index(models_uri, name)
    client = open_app(models_uri).test_client()
    reads: Counter[str] = Counter()
    for method in ("read_bytes", "read_if_exists"):
        original = getattr(storage, method)

        def counting(uri: str, _original: Any = original) -> Any:
            reads[uri[len(models_uri) + 1:]] += 1
            return _original(uri)

        monkeypatch.setattr(storage, method, counting)
    for name in USE_CASES:
        assert client.get(f"/api/v1/models/{name}/versions").status_code == 200
        assert client.get(f"/api/v1/models/{name}/evaluations").status_code == 200
    assert reads == Counter({f"{name}/index.json": 1 for name in USE_CASES} |
                            {f"{name}/current.json": 1 for name in USE_CASES})


def test_an_index_that_does_not_know_what_serves_is_rebuilt_in_memory(models_uri, open_app) -> None:
    for name in USE_CASES:
        registry.update_index(models_uri, name)
    evaluations = registry.list_evaluations(models_uri, "matchups")
    newer = {**evaluations[-1], "run_id": "run-by-hand", "evaluated_at": "2999-01-01T00:00:00+00:00"}
    storage.write_json(layout.evaluation_uri(models_uri, "matchups", "run-by-hand"), newer)  # no index update
    body = open_app(models_uri).test_client().get("/api/v1/models/matchups/evaluations").get_json()
    assert body["evaluations"][-1]["run_id"] == "run-by-hand"
    assert "run-by-hand" not in str(registry.read_index(models_uri, "matchups"))  # the web tier writes nothing
