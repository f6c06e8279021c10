"""Sections of the measured documents: docs/BENCHMARKS.md (make bench) and docs/RELIABILITY.md (make chaos).

Each benchmark or fault test saves its own section, as markdown, under `$PRONOSTICO_HOME/reports/<document>/`.
Assembling a document joins the saved sections in a fixed order beneath a description of the machine, so that one
section can be measured again without re-running the others.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from pronostico.core.config import PROJECT_ROOT, load_settings

# Read once, at import: tests point PRONOSTICO_HOME at private folders, but reports belong to the outer run.
REPORTS = Path(os.environ.get("PRONOSTICO_REPORTS_DIR", load_settings().home / "reports"))

MARKER = "<!-- section: {} -->"  # where a section starts in an assembled document
DOCUMENTS = {
    "benchmarks": ("BENCHMARKS.md", "Benchmarks", [
        "serving", "model_time", "pipeline", "freshness", "quality", "tuning", "models_index",
        "log_scale"]),
    "reliability": ("RELIABILITY.md", "Reliability", [
        "gunicorn_kill", "database_outage", "duplicate_events", "malformed_csv", "emr_step_failure",
        "airflow_down", "api_fuzzing"]),
    "deploy": ("DEPLOY.md", "The deploy rehearsal", [
        "scope", "first_deploy", "boots", "calls", "implied_permissions", "guide_commands"]),
}


def save_section(document: str, name: str, markdown: str) -> Path:
    """Keep one section's markdown (starting with its `## ` heading) for the next assembly of `document`."""
    if document not in DOCUMENTS:
        raise ValueError(f"unknown document {document!r}; one of {sorted(DOCUMENTS)}")
    folder = REPORTS / document
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(f"{MARKER.format(name)}\n{markdown.rstrip()}\n\n<sub>measured {stamp}</sub>\n",
                    encoding="utf-8")
    return path


def sections_in(path: Path) -> dict[str, str]:
    """The sections of an assembled document, by name, as its markers delimit them."""
    if not path.exists():
        return {}
    marker = re.escape(MARKER).replace(re.escape("{}"), "{}")
    start = "^(?=" + marker.format(r"[\w-]+") + "$)"
    parts = re.split(start, path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    found = (re.match(marker.format(r"([\w-]+)"), part) for part in parts)
    return {match.group(1): part.rstrip() + "\n" for match, part in zip(found, parts, strict=True) if match}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal")))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return (f"Machine: {os.cpu_count()} cores ({cpu}), {memory_kb / 2**20:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}; commit `{commit}`. The machine is shared "
            "and noisy: every comparison below was measured side by side in one run, and figures are medians.")


def assemble(document: str, preamble: str = "") -> Path:
    """Write docs/<DOCUMENT>.md from the saved sections, in the document's order, unknown sections last.

    A section not measured under this home (a fresh checkout measuring one benchmark, say) is carried over from the
    document as it stands, with its own "measured" date, rather than dropped."""
    filename, title, order = DOCUMENTS[document]
    out = PROJECT_ROOT / "docs" / filename
    folder = REPORTS / document
    saved = {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.md"))} if folder.is_dir() else {}
    saved = {**sections_in(out), **saved}
    names = [n for n in order if n in saved] + sorted(set(saved) - set(order))
    missing = [n for n in order if n not in saved]
    parts = [f"# {title}\n", machine() + "\n"]
    if preamble:
        parts.append(preamble.rstrip() + "\n")
    if missing:
        parts.append("Not measured in this assembly: " + ", ".join(missing) + ".\n")
    parts += [saved[n] for n in names]
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
