"""The test tiers: markers that tell the truth, and the wall time of each test folder.

`make test-fast` deselects the tests marked `spark`, `airflow`, `browser` or `rehearsal`, so a test that starts one
of these without its marker would slow down, or break, the fast tier. While a test runs (its fixtures' setup
included), this plugin watches the real starting points: a process created through `subprocess.Popen` (which
`subprocess.run`, asyncio's subprocesses and pyspark's gateway launcher all use), a SparkContext or SparkSession
made in this process, and Airflow first loaded into it. What a test starts without the matching marker fails it.

A session fixture starts its service once, for the first test that asks for it; so that the verdict does not depend
on the order, a test that uses one of the fixtures below carries its marker whether or not it was first.
"""

from __future__ import annotations

import importlib.abc
import os
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

MARKERS = {
    "spark": "starts Spark (a SparkContext, spark-submit or its JVM), or uses a fixture that trains with it",
    "airflow": "starts Airflow (the airflow command, or Airflow loaded in the test process)",
    "browser": "starts a browser (Chromium, or the Playwright driver that launches it)",
    "rehearsal": "part of the deploy rehearsal (tests/deploy): sandboxes, the AWS stand-in, the guide's deploy",
}
# session fixtures that start a service for whichever test asks first: every test using one carries the marker
FIXTURE_MARKERS = {
    "spark": {"spark", "matchups_run", "asset_history_runs", "assets_run", "trained_models", "web_stack",
              "duels_run"},
    "airflow": {"airflow_db", "live_airflow", "paused_dag"},
    "browser": {"browser"},
}
REHEARSAL_FOLDER = Path("tests", "deploy")
SPARK_PROGRAMS = {"spark-submit", "spark-class", "spark-shell", "pyspark"}
BROWSER_PROGRAMS = {"chromium", "chromium-browser", "chrome", "google-chrome", "headless_shell",
                    "chrome-headless-shell"}


def started_by(args: Any) -> str | None:
    """Which of the watched services a process with these arguments is, if any."""
    words = _words(args)
    if not words:
        return None
    program = Path(words[0]).name
    module = words[words.index("-m") + 1] if "-m" in words[:-1] else ""
    if program in SPARK_PROGRAMS or any(w.startswith("org.apache.spark.") for w in words):
        return "spark"
    if program == "airflow" or module.split(".")[0] == "airflow":
        return "airflow"
    if program in BROWSER_PROGRAMS or ("run-driver" in words and "playwright" in " ".join(words)):
        return "browser"
    return None


def _words(args: Any) -> list[str]:
    if isinstance(args, str | bytes | os.PathLike):
        text = os.fsdecode(args)
        return shlex.split(text) if " " in text else [text]  # shell=True passes one command line
    return [os.fsdecode(a) if isinstance(a, bytes | os.PathLike) else str(a) for a in args]


class Watch:
    """What each running test started, for one pytest session (pytester may nest another in this process)."""

    active: ClassVar[list[Watch]] = []

    def __init__(self) -> None:
        self.item: pytest.Item | None = None
        self.started: dict[str, list[str]] = defaultdict(list)  # nodeid -> "spark: spark-submit ..." lines

    @classmethod
    def record(cls, kind: str, what: str) -> None:
        for watch in cls.active:
            if watch.item is not None:
                watch.started[watch.item.nodeid].append(f"{kind}: {what[:200]}")


def _popen_init(original: Any) -> Any:
    def init(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        kind = started_by(args)
        if kind:
            Watch.record(kind, " ".join(_words(args)))
        original(self, args, *rest, **kwargs)

    init.watched = True  # type: ignore[attr-defined]
    return init


class AirflowImport(importlib.abc.MetaPathFinder):
    """Notes the first import of airflow in this process; finds nothing itself."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> None:
        if fullname == "airflow" and "airflow" not in sys.modules:
            Watch.record("airflow", "import airflow")


def _watch_spark_in_process() -> None:
    """A SparkContext or session made here, once pyspark is loaded: a gateway already up starts no process."""
    pyspark = sys.modules.get("pyspark")
    if pyspark is None or getattr(pyspark.SparkContext.__init__, "watched", False):
        return
    from pyspark.sql import SparkSession

    for owner, name in ((pyspark.SparkContext, "__init__"), (SparkSession.Builder, "getOrCreate")):
        original = getattr(owner, name)

        def watched(*args: Any, _original: Any = original, _name: str = f"{owner.__name__}.{name}",
                    **kwargs: Any) -> Any:
            Watch.record("spark", _name)
            return _original(*args, **kwargs)

        watched.watched = True  # type: ignore[attr-defined]
        setattr(owner, name, watched)


WATCH = pytest.StashKey[Watch]()


def pytest_configure(config: pytest.Config) -> None:
    known = {line.split(":")[0].strip() for line in config.getini("markers")}
    for name, meaning in MARKERS.items():
        if name not in known:  # a run outside this project's pyproject.toml (pytester, a subprocess)
            config.addinivalue_line("markers", f"{name}: {meaning}")
    if not getattr(subprocess.Popen.__init__, "watched", False):
        subprocess.Popen.__init__ = _popen_init(subprocess.Popen.__init__)  # type: ignore[method-assign]
    if not any(isinstance(finder, AirflowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, AirflowImport())
    watch = Watch()
    Watch.active.append(watch)
    config.stash[WATCH] = watch
    config.pluginmanager.register(FolderTimes(), "tiers-folder-times")


def pytest_unconfigure(config: pytest.Config) -> None:
    if WATCH in config.stash:
        Watch.active.remove(config.stash[WATCH])



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(item.fixturenames)  # fixtures of fixtures included
        for marker, fixtures in FIXTURE_MARKERS.items():
            if used & fixtures and not item.get_closest_marker(marker):
                item.add_marker(marker)
        if _folder_of(item.path, item.config.rootpath) == REHEARSAL_FOLDER and not item.get_closest_marker(
                "rehearsal"):
            item.add_marker("rehearsal")


def _folder_of(path: Path, root: Path) -> Path:
    try:
        relative = path.relative_to(root)
    except ValueError:
        return path.parent
    return Path(*relative.parts[:2]) if len(relative.parts) > 2 else relative.parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    watch = item.config.stash[WATCH]
    _watch_spark_in_process()
    watch.item = item
    try:
        yield
    finally:
        watch.item = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    # a start during setup is reported with the call, so that the test fails rather than errors; with no call
    # (setup failed or skipped) it is reported at teardown
    if call.when == "setup" and report.passed:
        return
    started = item.config.stash[WATCH].started.pop(item.nodeid, [])
    unmarked = sorted({line for line in started if not item.get_closest_marker(line.split(":")[0])})
    if unmarked and not report.skipped:
        kinds = sorted({line.split(":")[0] for line in unmarked})
        message = (f"{item.nodeid} started {', '.join(kinds)} without the marker: mark it "
                   f"{' and '.join(f'@pytest.mark.{k}' for k in kinds)} (tests/tiers.py)\n  " + "\n  ".join(unmarked))
        report.outcome = "failed"
        report.longrepr = f"{report.longrepr}\n\n{message}" if report.longrepr else message


# --- wall time per folder -------------------------------------------------------------------------------------------

DURATIONS = Path("test-artifacts", "durations.md")


class FolderTimes:
    """Setup, call and teardown seconds of each test summed per folder (tests/code, tests/web, ...)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set[str]] = defaultdict(set)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = Path(report.nodeid.split("::")[0])
        folder = str(Path(*path.parts[:2]) if len(path.parts) > 2 else path.parent)
        self.seconds[folder] += report.duration
        self.tests[folder].add(report.nodeid)

    def table(self) -> str:
        rows = [f"| {folder} | {len(self.tests[folder])} | {seconds:.1f} |"
                for folder, seconds in sorted(self.seconds.items())]
        total = (f"| session (wall, collection included) | {sum(map(len, self.tests.values()))} "
                 f"| {time.monotonic() - self.started:.1f} |")
        return "\n".join(["| folder | tests | seconds |", "|---|---:|---:|", *rows, total])

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if not self.seconds:
            return
        table = self.table()
        terminalreporter.write_sep("=", "wall seconds per test folder (setup + call + teardown)")
        terminalreporter.write_line(table)
        out = config.rootpath / DURATIONS
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# Test time per folder\n\n`pytest {shlex.join(config.invocation_params.args)}`\n\n{table}\n")
