"""One small storage layer over URIs: `file://` for the local buckets and `s3://` for AWS.

Everything that reads or writes a bucket goes through here, so the same code runs against
the local folder and S3. Writes are atomic on both: S3 PUTs are, and local writes go to a
temporary file that is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    etag: str
    modified: float  # seconds since the epoch

    @property
    def key(self) -> str:
        return split_uri(self.uri)[1]


def join(uri: str, *parts: str) -> str:
    tail = "/".join(p.strip("/") for p in parts if p)
    return f"{uri.rstrip('/')}/{tail}" if tail else uri


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI, or ('', absolute path) of a file:// URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme == "file":
        return "", unquote(parsed.path)
    raise ValueError(f"unsupported URI {uri!r}: use file:// or s3://")


def to_uri(path_or_uri: str | Path) -> str:
    text = str(path_or_uri)
    if text.startswith(("s3://", "file://")):
        return text
    return Path(text).expanduser().resolve().as_uri()


def safe_name(text: str) -> str:
    """A path segment safe for S3 keys, Hadoop paths and file names (Airflow run ids hold ':' and '+')."""
    return _UNSAFE.sub("-", text).strip("-") or "run"


def local_path(uri: str) -> Path:
    if not uri.startswith("file://"):
        raise ValueError(f"not a local URI: {uri}")
    return Path(split_uri(uri)[1])


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


@lru_cache(maxsize=1)
def _s3() -> Any:
    import boto3

    return boto3.client("s3")


def reset_clients() -> None:
    """Forget cached AWS clients (tests that start moto call this)."""
    _s3.cache_clear()


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_uri(uri)
        return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    return local_path(uri).read_bytes()


def read_if_exists(uri: str) -> bytes | None:
    """The object's bytes, or None when there is none: one request, where exists() then read_bytes() take two."""
    if is_s3(uri):
        bucket, key = split_uri(uri)
        try:
            return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        except _s3().exceptions.NoSuchKey:
            return None
    try:
        return local_path(uri).read_bytes()
    except FileNotFoundError:
        return None


def read_head(uri: str, size: int) -> bytes:
    """The first `size` bytes, without reading the whole object."""
    if is_s3(uri):
        bucket, key = split_uri(uri)
        try:
            body = _s3().get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{size - 1}")["Body"]
        except _s3().exceptions.ClientError as error:  # an empty object has no range to serve
            if "InvalidRange" in str(error):
                return b""
            raise
        return body.read()
    with local_path(uri).open("rb") as handle:
        return handle.read(size)


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    if is_s3(uri):
        bucket, key = split_uri(uri)
        _s3().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_text(uri: str, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
    write_bytes(uri, text.encode("utf-8"), content_type)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, value: Any) -> None:
    text = json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"
    write_text(uri, text, "application/json")


def exists(uri: str) -> bool:
    if is_s3(uri):
        bucket, key = split_uri(uri)
        try:
            _s3().head_object(Bucket=bucket, Key=key)
        except _s3().exceptions.ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
    return local_path(uri).exists()


def stat(uri: str) -> ObjectInfo:
    if is_s3(uri):
        bucket, key = split_uri(uri)
        head = _s3().head_object(Bucket=bucket, Key=key)
        return ObjectInfo(uri, head["ContentLength"], head["ETag"].strip('"'),
                          head["LastModified"].timestamp())
    path = local_path(uri)
    st = path.stat()
    return ObjectInfo(uri, st.st_size, file_md5(path), st.st_mtime)


def file_md5(path: Path) -> str:
    """The local stand-in for an S3 ETag: the MD5 of the content, as S3 gives for single-part PUTs."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_objects(prefix_uri: str, suffix: str | tuple[str, ...] = "") -> list[ObjectInfo]:
    """Objects under a prefix (recursively) whose key ends with `suffix` (or one of them), sorted by key; hidden
    local temp files are skipped."""
    if is_s3(prefix_uri):
        return _list_s3(prefix_uri, suffix)
    root = local_path(prefix_uri)
    if not root.exists():
        return []
    found = [
        stat(p.as_uri())
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name.endswith(suffix)
    ]
    return found


def _list_s3(prefix_uri: str, suffix: str | tuple[str, ...]) -> list[ObjectInfo]:
    bucket, prefix = split_uri(prefix_uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    found = []
    for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith(suffix) and not item["Key"].endswith("/"):
                found.append(ObjectInfo(f"s3://{bucket}/{item['Key']}", item["Size"],
                                        item["ETag"].strip('"'), item["LastModified"].timestamp()))
    return sorted(found, key=lambda o: o.uri)


def delete(uri: str) -> None:
    if is_s3(uri):
        bucket, key = split_uri(uri)
        _s3().delete_object(Bucket=bucket, Key=key)
        return
    local_path(uri).unlink(missing_ok=True)


def list_folders(prefix_uri: str) -> list[str]:
    """The URIs of the folders right under a prefix (S3's common prefixes), sorted; hidden local ones are skipped."""
    if is_s3(prefix_uri):
        bucket, prefix = split_uri(prefix_uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        found = [f"s3://{bucket}/{common['Prefix'].rstrip('/')}" for page in pages
                 for common in page.get("CommonPrefixes", [])]
        return sorted(found)
    root = local_path(prefix_uri)
    if not root.is_dir():
        return []
    return [p.as_uri() for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


S3_DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes


def delete_prefix(prefix_uri: str) -> None:
    """Every object under the prefix (as a folder: `a/b` leaves `a/bc` alone)."""
    if is_s3(prefix_uri):
        bucket, _ = split_uri(prefix_uri)
        keys = [{"Key": info.key} for info in _list_s3(prefix_uri, "")]
        for start in range(0, len(keys), S3_DELETE_BATCH):
            answer = _s3().delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + S3_DELETE_BATCH],
                                                                  "Quiet": True})
            if answer.get("Errors"):
                raise OSError(f"could not delete {len(answer['Errors'])} object(s) under {prefix_uri}: "
                              f"{answer['Errors'][0]}")
        return
    shutil.rmtree(local_path(prefix_uri), ignore_errors=True)


def copy(src: str, dst: str) -> None:
    if is_s3(src) and is_s3(dst):
        sb, sk = split_uri(src)
        db, dk = split_uri(dst)
        _s3().copy_object(Bucket=db, Key=dk, CopySource={"Bucket": sb, "Key": sk})
        return
    if not is_s3(src) and not is_s3(dst):
        target = local_path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path(src), target)
        return
    write_bytes(dst, read_bytes(src))


def upload_file(path: Path, uri: str) -> None:
    if is_s3(uri):
        bucket, key = split_uri(uri)
        _s3().upload_file(str(path), bucket, key)
        return
    copy(path.resolve().as_uri(), uri)

