"""Fixtures for the web tier: the Flask app and client on the tiny models (tests/fixtures/tiny_models.py, no Spark)
or on the real trained ones, a real MariaDB, and the real stack (nginx in front of two gunicorn instances, and the
log shipper) on free ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pronostico.core import storage
from pronostico.core.config import Settings, load_settings
from pronostico.local.stack import processes

SHARED_MARIADB_PORT = 3306
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


# --- the Flask app ------------------------------------------------------------------------------------------------

def app_config(models_uri: str, home: Path, **overrides: Any) -> dict[str, Any]:
    return {"TESTING": True, "SECRET_KEY": "test-secret", "MODELS_URI": models_uri,
            "DB_URL": f"sqlite:///{home / 'predictions.db'}", "SPOOL_DIR": str(home / "spool"),
            "MODEL_POLL_SECONDS": 0, "SPOOL_SEGMENT_BYTES": 1 << 20, "ANALYTICS_CACHE_SECONDS": 0, **overrides}


def _app(models_uri: str, home: Path) -> Iterator[Any]:
    from app import create_app

    application = create_app(app_config(models_uri, home))
    yield application
    application.extensions["pronostico"].spool.close()


@pytest.fixture
def app(settings: Settings, tiny_models: str) -> Iterator[Any]:
    """The app on the tiny models: what a test of the web tier's own behaviour needs, in the fast tier."""
    yield from _app(tiny_models, settings.home)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def trained_app(settings: Settings, trained_models: str) -> Iterator[Any]:
    """The app on the real trained models (Spark), for a test that asserts a fact of the real data."""
    yield from _app(trained_models, settings.home)


@pytest.fixture
def trained_client(trained_app: Any) -> Any:
    return trained_app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def migrated_app(app: Any) -> Any:
    """The app with its SQLite prediction log migrated to head."""
    from pronostico.prediction_log import db

    db.upgrade(app.config["DB_URL"])
    return app


def ship_all(app: Any) -> int:
    """Run the log shipper over the app's spool once, as `python -m pronostico.prediction_log.shipper --drain` does."""
    from pronostico.prediction_log import db
    from pronostico.prediction_log.shipper import LogShipper

    engine = db.create_engine(app.config["DB_URL"])
    try:
        return LogShipper(engine, Path(app.config["SPOOL_DIR"])).drain()
    finally:
        engine.dispose()


# --- MariaDB ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MariaDB:
    host: str
    port: int

    def url(self, database: str = "", port: int | None = None) -> str:
        return f"mysql+pymysql://root@{self.host}:{port or self.port}/{database}"

    def execute(self, sql: str) -> None:
        import pymysql

        connection = pymysql.connect(host=self.host, port=self.port, user="root", autocommit=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()


def _answers_as_root(port: int) -> bool:
    if not processes.port_open(port):
        return False
    try:
        MariaDB("127.0.0.1", port).execute("SELECT 1")
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """The machine's MariaDB at 127.0.0.1:3306 (root, no password), or else a private mariadbd of this session.

    PRONOSTICO_TEST_PRIVATE_MARIADB=1 uses a private server even where the machine runs one.
    """
    if os.environ.get("PRONOSTICO_TEST_PRIVATE_MARIADB") != "1" and _answers_as_root(SHARED_MARIADB_PORT):
        yield MariaDB("127.0.0.1", SHARED_MARIADB_PORT)
        return
    yield from _private_mariadb(tmp_path_factory.mktemp("mariadb"))


def _private_mariadb(root: Path) -> Iterator[MariaDB]:
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    install = shutil.which("mariadb-install-db")
    if not Path(server).exists() or not install:
        pytest.fail("mariadb-server is not installed: run bootstrap/local/install_system_packages.sh mariadb")
    datadir, port = root / "data", processes.free_port()
    subprocess.run([install, "--no-defaults", f"--datadir={datadir}", "--user=root", "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True)
    service = processes.Service("mariadb", [server, "--no-defaults", f"--datadir={datadir}", "--user=root",
                                            "--bind-address=127.0.0.1", f"--port={port}",
                                            f"--socket={root / 'mariadb.sock'}", "--skip-name-resolve"],
                                port=port)
    run_dir, log_dir = root / "run", root / "logs"
    running = processes.start(service, run_dir, log_dir)
    try:
        processes.wait_until_ready(service, running, 60)
        yield MariaDB("127.0.0.1", port)
    finally:
        processes.stop(run_dir, "mariadb")


@pytest.fixture
def mariadb_url(mariadb: MariaDB) -> Iterator[str]:
    """A database of this test's own on the real MariaDB, dropped afterwards."""
    name = f"pronostico_test_{uuid.uuid4().hex[:10]}"
    mariadb.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        yield mariadb.url(name)
    finally:
        mariadb.execute(f"DROP DATABASE IF EXISTS {name}")


class CuttableLink:
    """A TCP relay on a free port in front of the database, whose link can really be cut: while cut, the port
    refuses connections and every open connection is reset, as when the database host goes away."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = processes.free_port()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            victims = list(self._sockets)
            self._sockets.clear()
            listener, self._listener = self._listener, None
        # shutdown, not just close: another thread is blocked on each socket, and close alone would leave the
        # connection up until that thread returns
        for sock in ([listener] if listener is not None else []) + victims:
            for step in (lambda s: s.shutdown(socket.SHUT_RDWR), lambda s: s.close()):
                with contextlib.suppress(OSError):
                    step(sock)

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()


# --- the real stack -----------------------------------------------------------------------------------------------

@dataclass
class Stack:
    settings: Settings
    link: CuttableLink
    direct_db_url: str  # the same database, not through the cuttable link

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web.port}"

    def instance_url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"


def copy_models(models_uri: str, target: Path) -> str:
    """A private copy of a models bucket, for tests that promote or roll back."""
    shutil.copytree(storage.local_path(models_uri), target)
    return target.as_uri()


@pytest.fixture(scope="session")
def web_stack(trained_models: str, mariadb: MariaDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """nginx on a free port in front of two gunicorn instances and the log shipper, logging to a MariaDB database
    of its own through a link the outage test can cut. Stopped, process groups and all, at the end."""
    from pronostico.local.stack import web

    home = tmp_path_factory.mktemp("web-stack")
    database = f"pronostico_stack_{uuid.uuid4().hex[:8]}"
    mariadb.execute(f"CREATE DATABASE {database} CHARACTER SET utf8mb4")
    link = CuttableLink(mariadb.port)
    env = {**os.environ,
           "PRONOSTICO_HOME": str(home),
           "PRONOSTICO_MODELS_URI": copy_models(trained_models, home / "models"),
           "PRONOSTICO_DB_URL": mariadb.url(database, port=link.port),
           "PRONOSTICO_WEB_PORT": str(processes.free_port()),
           "PRONOSTICO_APP_PORTS": f"{processes.free_port()},{processes.free_port()}",
           "PRONOSTICO_MODEL_POLL_SECONDS": "0.5",
           "PRONOSTICO_SHIPPER_IDLE_SECONDS": "0.1"}
    settings = load_settings(env)
    try:
        web.start(settings)
        yield Stack(settings, link, mariadb.url(database))
    finally:
        web.stop(settings)
        link.close()
        mariadb.execute(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
