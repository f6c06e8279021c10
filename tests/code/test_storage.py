"""The URI storage layer, on the local folder and on S3 (moto)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pronostico.core import storage


@pytest.fixture
def s3_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        storage.reset_clients()
        boto3.client("s3").create_bucket(Bucket="pronostico-test-models")
        yield "s3://pronostico-test-models"
    storage.reset_clients()


@pytest.fixture(params=["file", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return (tmp_path / "bucket").as_uri()
    return request.getfixturevalue("s3_root")


def test_write_then_read_round_trips(root: str) -> None:
    uri = storage.join(root, "matchups", "current.json")
    storage.write_json(uri, {"version": "v1"})
    assert storage.read_json(uri) == {"version": "v1"}
    assert storage.exists(uri)
    assert not storage.exists(storage.join(root, "matchups", "missing.json"))


def test_stat_gives_an_md5_etag_like_s3(root: str) -> None:
    uri = storage.join(root, "raw", "a.csv")
    storage.write_bytes(uri, b"date,symbol\n")
    info = storage.stat(uri)
    assert info.size == 12
    assert info.etag == hashlib.md5(b"date,symbol\n").hexdigest()
    assert info.etag == storage.stat(uri).etag


def test_list_objects_is_recursive_sorted_and_filtered(root: str) -> None:
    for key in ("assets/b.csv", "assets/a.csv", "assets/notes.txt", "assets/deep/c.csv"):
        storage.write_text(storage.join(root, key), "x")
    listed = [o.uri.rsplit("/assets/", 1)[1] for o in storage.list_objects(storage.join(root, "assets"), ".csv")]
    assert listed == ["a.csv", "b.csv", "deep/c.csv"]


def test_read_head_reads_only_the_start(root: str) -> None:
    uri = storage.join(root, "big.csv")
    storage.write_bytes(uri, b"header\n" + b"x" * 100_000)
    assert storage.read_head(uri, 7) == b"header\n"
    empty = storage.join(root, "empty.csv")
    storage.write_bytes(empty, b"")
    assert storage.read_head(empty, 10) == b""


def test_copy_and_delete_prefix(root: str) -> None:
    src = storage.join(root, "raw", "x.csv")
    storage.write_text(src, "payload")
    storage.copy(src, storage.join(root, "quarantine", "run-1", "x.csv"))
    assert storage.read_text(storage.join(root, "quarantine", "run-1", "x.csv")) == "payload"
    storage.delete_prefix(storage.join(root, "quarantine"))
    assert storage.list_objects(storage.join(root, "quarantine")) == []
    assert storage.exists(src)


def test_local_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path) -> None:
    uri = (tmp_path / "models" / "current.json").as_uri()
    storage.write_json(uri, {"version": "a"})
    storage.write_json(uri, {"version": "b"})
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["current.json"]


def test_uris_and_safe_names() -> None:
    assert storage.split_uri("s3://bucket/a/b.csv") == ("bucket", "a/b.csv")
    assert storage.split_uri("file:///tmp/x%20y.csv") == ("", "/tmp/x y.csv")
    assert storage.safe_name("manual__2026-11-22T08:00:00+00:00") == "manual__2026-11-22T08-00-00-00-00"
    assert storage.to_uri("s3://b/k") == "s3://b/k"
    with pytest.raises(ValueError, match="unsupported URI"):
        storage.split_uri("http://example.com/x")


def test_list_folders_gives_the_folders_right_under_a_prefix(root: str) -> None:
    for key in ("versions/v2/manifest.json", "versions/v1/spark_model/metadata/part-0", "versions/stray.json"):
        storage.write_text(storage.join(root, "assets", key), "x")
    found = storage.list_folders(storage.join(root, "assets", "versions"))
    assert found == [storage.join(root, "assets", "versions", v) for v in ("v1", "v2")]
    assert storage.list_folders(storage.join(root, "nothing")) == []


def test_delete_prefix_removes_one_folder_not_its_namesakes(root: str) -> None:
    for key in ("v1/manifest.json", "v1/spark_model/data/part-0", "v10/manifest.json"):
        storage.write_text(storage.join(root, "versions", key), "x")
    storage.delete_prefix(storage.join(root, "versions", "v1"))
    left = [o.uri.rsplit("/versions/", 1)[1] for o in storage.list_objects(storage.join(root, "versions"))]
    assert left == ["v10/manifest.json"]


def test_list_objects_takes_several_suffixes(root: str) -> None:
    for key in ("a/manifest.json", "a/metrics.json", "a/entities.json"):
        storage.write_text(storage.join(root, key), "x")
    listed = storage.list_objects(root, ("manifest.json", "metrics.json"))
    assert [o.uri.rsplit("/", 1)[1] for o in listed] == ["manifest.json", "metrics.json"]


def test_read_if_exists_gives_none_for_a_missing_object(root: str) -> None:
    uri = storage.join(root, "assets", "index.json")
    assert storage.read_if_exists(uri) is None
    storage.write_text(uri, "{}")
    assert storage.read_if_exists(uri) == b"{}"
