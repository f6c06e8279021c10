"""Retention: the registry keeps its newest versions and every version that ever served, and nothing being written."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from pronostico.core import layout, registry, storage
from pronostico.core.config import Settings
from pronostico.local import cli
from tests.code.test_registry import GOOD, USE_CASE, WORSE, make_version


def folders(settings: Settings) -> list[str]:
    return [uri.rsplit("/", 1)[1] for uri in storage.list_folders(layout.versions_uri(settings.models_uri, USE_CASE))]


def indexed(settings: Settings) -> list[str]:
    return [e["folder"] for e in registry.read_index(settings.models_uri, USE_CASE)["versions"]]


def promote(settings: Settings, version: str, keep: int = 0) -> registry.Decision:
    return registry.promote_candidate(settings.models_uri, USE_CASE, version, keep_versions=keep)


@pytest.fixture
def history(settings: Settings) -> Settings:
    """v1 promoted; v2 and v3 worse, with older data (never served); v4 as good (promoted); v5 worse, lends its
    state; v6 worse with older data (kept out, lends nothing)."""
    make_version(settings, "v1", GOOD, seen_until="2025-03-01")
    promote(settings, "v1")
    for name in ("v2", "v3"):
        make_version(settings, name, WORSE, seen_until="2025-02-01")
        promote(settings, name)
    make_version(settings, "v4", GOOD, seen_until="2025-04-01")
    promote(settings, "v4")
    make_version(settings, "v5", WORSE, seen_until="2025-08-01")
    promote(settings, "v5")
    make_version(settings, "v6", WORSE, seen_until="2025-05-01")
    promote(settings, "v6")
    current = registry.read_current(settings.models_uri, USE_CASE)
    assert (current["version"], current["state_version"]) == ("v4", "v5")
    return settings


def test_keeping_zero_keeps_every_version(history) -> None:
    assert registry.prune(history.models_uri, USE_CASE, 0) == []
    assert folders(history) == ["v1", "v2", "v3", "v4", "v5", "v6"]


def test_pruning_keeps_the_newest_and_every_version_that_served(history) -> None:
    assert registry.prune(history.models_uri, USE_CASE, 1, dry_run=True) == ["v2", "v3"]
    assert folders(history) == ["v1", "v2", "v3", "v4", "v5", "v6"]  # a dry run removes nothing
    assert registry.prune(history.models_uri, USE_CASE, 1) == ["v2", "v3"]
    assert folders(history) == indexed(history) == ["v1", "v4", "v5", "v6"]  # the index follows
    assert registry.prune(history.models_uri, USE_CASE, 2, dry_run=True) == []


def test_each_promotion_prunes_to_the_configured_count(history, monkeypatch) -> None:
    monkeypatch.setenv("PRONOSTICO_REGISTRY_KEEP_VERSIONS", "2")
    make_version(history, "v7", WORSE, seen_until="2025-05-01")
    registry.promote_candidate(history.models_uri, USE_CASE, "v7")
    assert folders(history) == indexed(history) == ["v1", "v4", "v5", "v6", "v7"]


def test_a_version_being_written_is_kept_and_an_abandoned_one_removed(history) -> None:
    uri = history.models_uri
    for name in ("v0-failed", "v3-recent", "v9-writing"):
        storage.write_json(storage.join(layout.version_uri(uri, USE_CASE, name), "metrics.json"), {})
    old = time.time() - registry.ABANDONED_AFTER_SECONDS - 60
    failed = layout.version_file(uri, USE_CASE, "v0-failed", "metrics.json")
    os.utime(storage.local_path(failed), (old, old))
    assert registry.prune(uri, USE_CASE, 1) == ["v0-failed", "v2", "v3"]
    assert folders(history) == ["v1", "v3-recent", "v4", "v5", "v6", "v9-writing"]


def test_a_version_that_served_only_through_rollbacks_is_kept(history) -> None:
    uri = history.models_uri
    registry.rollback(uri, USE_CASE, "v2")
    registry.rollback(uri, USE_CASE, "v4")  # no promotion record names v2, and current.json no longer points at it
    assert registry.read_current(uri, USE_CASE)["previous_version"] == "v2"
    registry.rollback(uri, USE_CASE, "v1")
    assert registry.prune(uri, USE_CASE, 1) == ["v3"]


def test_a_rollback_to_a_version_the_plan_doomed_keeps_it(history, monkeypatch) -> None:
    uri = history.models_uri
    plan = registry.prune_plan

    def plan_then_rollback(*args: Any) -> list[str]:
        doomed = plan(*args)
        registry.rollback(uri, USE_CASE, doomed[0])  # an operator's rollback lands between plan and removal
        return doomed

    monkeypatch.setattr(registry, "prune_plan", plan_then_rollback)
    assert registry.prune(uri, USE_CASE, 1) == ["v3"]
    assert "v2" in folders(history) and registry.read_current(uri, USE_CASE)["version"] == "v2"


def test_a_rollback_whose_version_is_pruned_meanwhile_undoes_itself(history, monkeypatch) -> None:
    uri = history.models_uri
    before = registry.read_current(uri, USE_CASE)
    write_json = storage.write_json

    def write_then_prune(target: str, value: Any) -> None:
        write_json(target, value)
        if target == layout.current_uri(uri, USE_CASE) and value.get("version") == "v2":
            storage.delete(layout.version_file(uri, USE_CASE, "v2", layout.MANIFEST))  # a prune's first delete

    monkeypatch.setattr(storage, "write_json", write_then_prune)
    with pytest.raises(FileNotFoundError, match="pruned while rolling back"):
        registry.rollback(uri, USE_CASE, "v2")
    assert registry.read_current(uri, USE_CASE) == before


def test_the_cli_prunes_and_reindexes(history, capsys) -> None:
    assert cli.main(["models", "prune", "--use-case", USE_CASE, "--keep", "1", "--dry-run"]) == 0
    assert "would remove 2 version(s): v2, v3" in capsys.readouterr().out
    assert cli.main(["models", "prune", "--use-case", USE_CASE]) == 1  # the setting keeps every version
    assert "pass --keep N" in capsys.readouterr().err
    storage.delete(layout.index_uri(history.models_uri, USE_CASE))
    assert cli.main(["models", "reindex", "--use-case", USE_CASE]) == 0
    assert "indexed 6 version(s)" in capsys.readouterr().out
    assert indexed(history) == ["v1", "v2", "v3", "v4", "v5", "v6"]
