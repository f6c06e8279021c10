"""The registry's index: a brief of every complete version and evaluation, rebuilt from their files."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pronostico.core import layout, registry, storage
from pronostico.core.config import Settings
from tests.code.test_registry import GOOD, USE_CASE, WORSE, make_version


def brief(version: dict[str, Any]) -> dict[str, Any]:
    """What the index keeps of a version as list_versions gives it."""
    return {**version, "manifest": {k: version["manifest"][k] for k in registry.INDEX_MANIFEST
                                    if k in version["manifest"]},
            "metrics": {k: version["metrics"][k] for k in registry.INDEX_METRICS if k in version["metrics"]}}


def write_evaluation(settings: Settings, run_id: str, evaluated_at: str, curves: bool = True) -> dict[str, Any]:
    found = {"use_case": USE_CASE, "run_id": run_id, "evaluated_at": evaluated_at, "model_version": "v1",
             "status": "scored", "rows": 60, "window": {"after": "2025-01-01", "start": "2025-01-02", "end": "x"},
             "model": {"log_loss": 0.9}, "baselines": {"most_frequent_class": {"log_loss": 1.0}},
             "backtest": {"pooled": {"strategy": {"trades": 3}}, **({"curves": {"pooled": [1, 2]}} if curves else {})}}
    storage.write_json(layout.evaluation_uri(settings.models_uri, USE_CASE, run_id), found)
    return found


def counted_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every object read through the storage layer from now on, by its last two path segments."""
    reads: Counter[str] = Counter()
    for name in ("read_bytes", "read_if_exists"):
        original = getattr(storage, name)

        def counting(uri: str, _original: Any = original) -> Any:
            reads["/".join(uri.rsplit("/", 2)[-2:])] += 1
            return _original(uri)

        monkeypatch.setattr(storage, name, counting)
    return reads


@pytest.fixture
def registry_with_two(settings: Settings) -> str:
    make_version(settings, "v1", GOOD, seen_until="2025-03-01")
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    make_version(settings, "v2", WORSE, seen_until="2025-07-01")
    registry.promote_candidate(settings.models_uri, USE_CASE, "v2")  # not promoted: lends its state
    return settings.models_uri


def test_the_index_briefs_every_complete_version_as_the_listing_gives_it(settings, registry_with_two) -> None:
    uri = registry_with_two
    storage.write_json(storage.join(layout.version_uri(uri, USE_CASE, "v3"), "metrics.json"), {})  # incomplete
    registry.update_index(uri, USE_CASE)
    index = registry.read_index(uri, USE_CASE)
    current = registry.read_current(uri, USE_CASE)
    assert registry.indexed_versions(index, current) == [brief(v) for v in registry.list_versions(uri, USE_CASE)]
    assert [v["version"] for v in registry.indexed_versions(index, current)] == ["v1", "v2"]
    assert "features" not in index["versions"][0]["manifest"]  # the manifest in brief


def test_each_promotion_updates_the_index_with_its_record(registry_with_two) -> None:
    index = registry.read_index(registry_with_two, USE_CASE)
    records = {e["folder"]: e["promotion"] for e in index["versions"]}
    assert records["v1"]["promoted"] is True
    assert (records["v2"]["promoted"], records["v2"]["state_version"]) == (False, "v2")


def test_evaluations_are_indexed_oldest_first_without_their_curves(settings, registry_with_two) -> None:
    newer = write_evaluation(settings, "run-b", "2025-02-01T00:00:00+00:00")
    older = write_evaluation(settings, "run-a", "2025-01-01T00:00:00+00:00", curves=False)
    index = registry.update_index(registry_with_two, USE_CASE)
    assert registry.indexed_evaluations(index) == [older, registry.evaluation_brief(newer)]
    assert "curves" not in registry.indexed_evaluations(index)[1]["backtest"]
    assert registry.indexed_evaluation(registry_with_two, USE_CASE, index, "run-b") == newer  # curves and all
    assert [e["run_id"] for e in registry.list_evaluations(registry_with_two, USE_CASE)] == ["run-a", "run-b"]


def test_an_update_reads_only_the_files_that_changed(settings, registry_with_two, monkeypatch) -> None:
    uri = registry_with_two
    registry.update_index(uri, USE_CASE)
    reads = counted_reads(monkeypatch)
    registry.update_index(uri, USE_CASE)
    assert [k for k in reads if k.startswith(("v1/", "v2/"))] == []
    metrics = layout.version_file(uri, USE_CASE, "v2", layout.METRICS)
    storage.write_json(metrics, {**storage.read_json(metrics), "model": {"log_loss": 0.5}})
    reads.clear()
    index = registry.update_index(uri, USE_CASE)
    assert {k for k in reads if k.startswith(("v1/", "v2/"))} == {"v2/manifest.json", "v2/metrics.json",
                                                                  "v2/promotion.json"}
    assert index["versions"][1]["metrics"]["model"] == {"log_loss": 0.5}


def test_a_stale_index_is_brought_up_to_date_and_rebuild_rereads_everything(settings, registry_with_two) -> None:
    uri = registry_with_two
    stored = registry.read_index(uri, USE_CASE)
    make_version(settings, "v3", GOOD)  # written without an index update
    assert [e["folder"] for e in registry.read_index(uri, USE_CASE)["versions"]] == ["v1", "v2"]
    assert [e["folder"] for e in registry.fresh_index(uri, USE_CASE)["versions"]] == ["v1", "v2", "v3"]
    assert registry.version_for_run(uri, USE_CASE, "run-v3") == "v3"
    tampered = {**stored, "versions": [{**stored["versions"][0], "metrics": {"model": {"log_loss": 42}}},
                                       *stored["versions"][1:]]}
    storage.write_json(layout.index_uri(uri, USE_CASE), tampered)
    assert registry.update_index(uri, USE_CASE)["versions"][0]["metrics"]["model"] == {"log_loss": 42}  # reused
    assert registry.update_index(uri, USE_CASE, rebuild=True)["versions"][0]["metrics"]["model"] == {"log_loss": 1.0}


def test_a_change_landing_while_the_index_is_written_makes_it_build_again(settings, registry_with_two,
                                                                          monkeypatch) -> None:
    """A concurrent writer adds v3 after this update listed the files: the update must not leave v3 out."""
    uri = registry_with_two
    write_text = storage.write_text
    landed = []

    def write_then_race(target: str, text: str, content_type: str = "") -> None:
        write_text(target, text, content_type)
        if target == layout.index_uri(uri, USE_CASE) and not landed:
            landed.append(make_version(settings, "v3", GOOD))

    monkeypatch.setattr(storage, "write_text", write_then_race)
    registry.update_index(uri, USE_CASE)
    assert landed == ["v3"]
    assert [e["folder"] for e in registry.read_index(uri, USE_CASE)["versions"]] == ["v1", "v2", "v3"]


def test_rollback_refreshes_the_index(settings, registry_with_two) -> None:
    make_version(settings, "v3", GOOD)
    registry.rollback(registry_with_two, USE_CASE, "v1")
    assert [e["folder"] for e in registry.read_index(registry_with_two, USE_CASE)["versions"]] == ["v1", "v2", "v3"]


def test_an_index_of_another_format_counts_as_absent(registry_with_two) -> None:
    storage.write_json(layout.index_uri(registry_with_two, USE_CASE), {"format": 0, "versions": []})
    assert registry.read_index(registry_with_two, USE_CASE) is None
    assert registry.read_index(registry_with_two, "matchups") is None


def test_an_index_covers_only_what_it_knows(settings, registry_with_two) -> None:
    write_evaluation(settings, "run-a", "2025-01-01T00:00:00+00:00")
    index = registry.update_index(registry_with_two, USE_CASE)
    assert registry.index_covers(index, {"v1", "v2"}, "run-a")
    assert not registry.index_covers(index, {"v1", "v3"}, "run-a")  # a version written since
    assert not registry.index_covers(index, {"v1"}, "run-b")  # an evaluation written since
    assert not registry.index_covers(index, {"v1"})  # the worker has none: the index's may be gone
