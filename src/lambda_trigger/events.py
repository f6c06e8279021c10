"""S3 event notifications -> the uploads that should start a run, each with a deterministic DAG run id.

S3 delivers events at least once, so the run id is derived from what identifies one object version (bucket, key,
and the version id, or the ETag where the bucket is not versioned): a second delivery of the same event asks for
the same run, which Airflow refuses with 409.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

# The release build writes the use cases' names here (pronostico.orchestration.packaging): the Lambda's package
# holds no use-case module, so it cannot find them the way the source tree does.
BUNDLED_NAMES = "use_cases.json"
RUN_ID_PREFIX = "s3"
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~+-]+")  # Airflow's allowed_run_id_pattern, minus ':'


@dataclass(frozen=True)
class Upload:
    """One new object under <use_case>/ in the raw bucket."""

    bucket: str
    key: str
    use_case: str
    etag: str
    version_id: str = ""
    size: int = 0
    event_time: str = ""

    @property
    def dag_run_id(self) -> str:
        return dag_run_id(self.use_case, self.bucket, self.key, self.version_id or self.etag)

    def conf(self) -> dict[str, Any]:
        """The DAG run's conf: what the DAG needs to locate and check the object."""
        return {"use_case": self.use_case, "bucket": self.bucket, "key": self.key, "etag": self.etag,
                "version_id": self.version_id, "size": self.size, "event_time": self.event_time,
                "source": "s3-event"}


@dataclass(frozen=True)
class Ignored:
    key: str
    reason: str


@cache
def use_case_names() -> tuple[str, ...]:
    """The use cases an upload can be for: bundled at release time, else found in the source tree."""
    bundled = resources.files(__package__).joinpath(BUNDLED_NAMES)
    if bundled.is_file():
        return tuple(json.loads(bundled.read_text()))
    from pronostico.core.usecases import names

    return names()


def dag_run_id(use_case: str, bucket: str, key: str, version: str) -> str:
    digest = hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).hexdigest()[:16]
    stem = _RUN_ID_UNSAFE.sub("-", PurePosixPath(key).stem).strip("-")[:40] or "object"
    return f"{RUN_ID_PREFIX}__{use_case}__{stem}__{digest}"


def use_case_of(key: str) -> str | None:
    """The use case whose raw folder holds this key, if the key is a CSV there (<use_case>/.../<name>.csv)."""
    parts = key.split("/")
    if len(parts) < 2 or parts[0] not in use_case_names() or not parts[-1].endswith(".csv"):
        return None
    if parts[-1].startswith(".") or any(not part for part in parts):
        return None  # hidden files (local temp files) and empty segments are never inputs
    return parts[0]


def parse_event(event: dict[str, Any]) -> tuple[list[Upload], list[Ignored]]:
    """The uploads in an S3 notification, and what was skipped with why.

    Raises ValueError for something that is not an S3 notification at all: that is a wiring mistake,
    and it should fail loudly rather than be skipped.
    """
    if event.get("Event") == "s3:TestEvent":
        return [], [Ignored("", "s3:TestEvent, sent when the notification is configured")]
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError(f"not an S3 event notification: no Records list in keys {sorted(event)}")
    uploads: list[Upload] = []
    ignored: list[Ignored] = []
    for record in records:
        found = _upload(record)
        (uploads if isinstance(found, Upload) else ignored).append(found)
    return uploads, ignored


def _upload(record: dict[str, Any]) -> Upload | Ignored:
    s3 = record.get("s3") or {}
    key = unquote_plus(str((s3.get("object") or {}).get("key", "")))  # S3 URL-encodes keys, spaces as '+'
    if record.get("eventSource") != "aws:s3":
        return Ignored(key, f"not an S3 record (eventSource {record.get('eventSource')!r})")
    if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
        return Ignored(key, f"{record.get('eventName')} is not an upload")
    use_case = use_case_of(key)
    if use_case is None:
        return Ignored(key, f"outside <use_case>/*.csv (use cases: {', '.join(use_case_names())})")
    obj = s3["object"]
    return Upload(bucket=str(s3["bucket"]["name"]), key=key, use_case=use_case,
                  etag=str(obj.get("eTag", "")).strip('"'), version_id=str(obj.get("versionId") or ""),
                  size=int(obj.get("size") or 0), event_time=str(record.get("eventTime", "")))
