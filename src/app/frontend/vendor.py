"""Vendor the web pages' JS and CSS libraries into src/app/static/vendor/ with Python's standard library only.

Each package's tarball comes from the npm registry at the URL that package-lock.json names (`resolved`, or the
registry's standard tarball path when the lock leaves it out) and must match the lock's `integrity` digest. Only
the files the pages load, each package's LICENSE and versions.json are written. A stamp (.built) records the
lock, the file list and a digest of each output, so an up-to-date directory is left alone without a download.

    python3 src/app/frontend/vendor.py [--force] [--check]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "package-lock.json"
VENDOR = HERE.parent / "static" / "vendor"
STAMP = ".built"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
# package -> (path inside its tarball's package/ directory, name in vendor/)
FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "chart.js": (("dist/chart.umd.min.js", "chart.umd.min.js"),),
    "tom-select": (("dist/js/tom-select.complete.min.js", "tom-select.complete.min.js"),
                   ("dist/css/tom-select.default.min.css", "tom-select.default.min.css")),
}


def registry() -> str:
    # npm's own environment setting, so that a mirror configured for npm serves this script too
    return os.environ.get("NPM_CONFIG_REGISTRY", DEFAULT_REGISTRY).rstrip("/")


def tarball_url(name: str, entry: dict) -> str:
    if entry.get("resolved"):
        return entry["resolved"]
    return f"{registry()}/{name}/-/{name.rsplit('/', 1)[-1]}-{entry['version']}.tgz"


def check_integrity(blob: bytes, integrity: str, what: str) -> None:
    """Raise unless one of the SRI hashes (sha512-<base64> ...) that npm accepts matches."""
    for token in integrity.split():
        algorithm, _, expected = token.partition("-")
        if algorithm in ("sha512", "sha384", "sha256") and \
                base64.b64encode(hashlib.new(algorithm, blob).digest()).decode() == expected:
            return
    raise ValueError(f"{what}: the download does not match the lock's integrity {integrity}")


def download(url: str, attempts: int = 3) -> bytes:
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:
                return answer.read()
        except OSError as error:
            if attempt == attempts:
                raise RuntimeError(f"cannot download {url}: {error}") from error
            time.sleep(attempt)
    raise AssertionError("unreachable")


def package_members(blob: bytes) -> dict[str, bytes]:
    """The regular files of an npm tarball, by path below its top directory (npm names it package/)."""
    members = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                members[member.name.split("/", 1)[-1]] = extracted.read()
    return members


def package_outputs(name: str, members: dict[str, bytes]) -> dict[str, bytes]:
    outputs = {out: members[inside] for inside, out in FILES[name]}
    licenses = [path for path in members if "/" not in path and path.startswith("LICENSE")]
    if len(licenses) != 1:
        raise ValueError(f"{name}: expected one top-level LICENSE file, found {licenses}")
    outputs[f"LICENSE.{name}"] = members[licenses[0]]
    return outputs


def locked_packages(lock: dict) -> dict[str, dict]:
    return {name: lock["packages"][f"node_modules/{name}"] for name in FILES}


def versions_json(packages: dict[str, dict]) -> bytes:
    # the same bytes as JSON.stringify(..., null, 2) printed by console.log
    return (json.dumps({name: entry["version"] for name, entry in packages.items()}, indent=2) + "\n").encode()


def build_outputs(lock: dict) -> dict[str, bytes]:
    packages = locked_packages(lock)
    outputs: dict[str, bytes] = {"versions.json": versions_json(packages)}
    for name, entry in packages.items():
        url = tarball_url(name, entry)
        blob = download(url)
        check_integrity(blob, entry["integrity"], f"{name}@{entry['version']} ({url})")
        outputs.update(package_outputs(name, package_members(blob)))
    return outputs


def stamp_for(lock_bytes: bytes, outputs: dict[str, bytes]) -> dict:
    spec = json.dumps(FILES, sort_keys=True).encode()
    return {"inputs": hashlib.sha256(lock_bytes + spec).hexdigest(),
            "files": {name: hashlib.sha256(blob).hexdigest() for name, blob in sorted(outputs.items())}}


def is_current(vendor: Path, lock_bytes: bytes) -> bool:
    """True when vendor/ holds, unchanged, what this lock and file list produce."""
    try:
        stamp = json.loads((vendor / STAMP).read_text())
        files = {name: (vendor / name).read_bytes() for name in stamp["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return stamp == stamp_for(lock_bytes, files)


def write_vendor(vendor: Path, outputs: dict[str, bytes], stamp: dict) -> None:
    """Replace vendor/ as a whole, so that no file of an older version stays behind."""
    staging = vendor.with_name(vendor.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, blob in outputs.items():
        (staging / name).write_bytes(blob)
    (staging / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    old = vendor.with_name(vendor.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if vendor.exists():
        vendor.rename(old)
    staging.rename(vendor)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="vendor the web pages' libraries from the npm registry")
    parser.add_argument("--force", action="store_true", help="download again even when vendor/ is current")
    parser.add_argument("--check", action="store_true", help="only say whether vendor/ is current (exit 1 if not)")
    parser.add_argument("--out", type=Path, default=VENDOR, help="the directory to fill (default: %(default)s)")
    args = parser.parse_args(argv)
    lock_bytes = LOCK.read_bytes()
    current = is_current(args.out, lock_bytes)
    if args.check:
        print(f"{args.out}: {'current' if current else 'missing or stale'}")
        return 0 if current else 1
    if current and not args.force:
        print(f"{args.out} is current")
        return 0
    outputs = build_outputs(json.loads(lock_bytes))
    write_vendor(args.out, outputs, stamp_for(lock_bytes, outputs))
    print(f"vendored into {args.out}: {' '.join(sorted(outputs))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
