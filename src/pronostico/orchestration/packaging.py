"""Deterministic zip archives of the code: the package for EMR's --py-files, and the trigger Lambda's package.

The same sources always give the same bytes (sorted entries, fixed timestamps, no caches), so a digest of the
archive names a code version, and staging the same code twice writes nothing new.

    python -m pronostico.orchestration.packaging lambda-zip dist/lambda_trigger.zip
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pronostico
from pronostico.core.usecases import names

SOURCE_ROOT = Path(pronostico.__file__).resolve().parent.parent  # src/, or site-packages/ when installed
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
# The handler imports pronostico.core.config only, which needs nothing but the standard library.
LAMBDA_MODULES = ("pronostico/__init__.py", "pronostico/core/__init__.py", "pronostico/core/config.py")


def package_files(package_dir: Path, root: Path) -> list[tuple[Path, str]]:
    """(file, name in the archive) for each Python source of a package, caches left out."""
    return [(path, path.relative_to(root).as_posix()) for path in sorted(package_dir.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")]


def build_zip(entries: Iterable[tuple[Path, str]], generated: Mapping[str, bytes] | None = None) -> bytes:
    """The files, and the generated contents, under their names in the archive, in name order."""
    contents = {name: path.read_bytes() for path, name in entries} | dict(generated or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(contents):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, contents[name])
    return buffer.getvalue()


# What runs on the cluster: the core and the Spark jobs. Orchestration, the prediction log and the local tooling stay
# off it (a test checks that the zip's modules import nothing outside it).
EMR_PACKAGES = ("pronostico/core", "pronostico/pipeline")


def pronostico_zip() -> bytes:
    """The packages the Spark steps import, importable from the zip (spark-submit --py-files)."""
    entries = [(SOURCE_ROOT / "pronostico/__init__.py", "pronostico/__init__.py")]
    for package in EMR_PACKAGES:
        entries += package_files(SOURCE_ROOT / package, SOURCE_ROOT)
    return build_zip(entries)


def lambda_zip() -> bytes:
    """lambda_trigger plus the stdlib-only modules of pronostico that it imports, and the use cases' names."""
    entries = package_files(SOURCE_ROOT / "lambda_trigger", SOURCE_ROOT)
    entries += [(SOURCE_ROOT / name, name) for name in LAMBDA_MODULES]
    return build_zip(entries, {"lambda_trigger/use_cases.json": json.dumps(list(names())).encode()})


def digest(*blobs: bytes) -> str:
    sha = hashlib.sha256()
    for blob in blobs:
        sha.update(hashlib.sha256(blob).digest())
    return sha.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build deployment archives")
    parser.add_argument("what", choices=["lambda-zip"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(lambda_zip())
    print(f"{args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
