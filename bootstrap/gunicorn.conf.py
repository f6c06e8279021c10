"""gunicorn for the pronostico web app, the same file locally and on EC2:

    gunicorn -c bootstrap/gunicorn.conf.py 'app:create_app()'

Bind and worker count come from PRONOSTICO_BIND and PRONOSTICO_WORKERS (pronostico.core.config). Sync workers: nginx
buffers slow clients in front, and a prediction is a short CPU-bound request, so one request per process is the
fastest arrangement on this hardware (see ARCHITECTURE.md, "Throughput facts").
"""

from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path
from typing import Any

from pronostico.core.config import load_settings

_settings = load_settings()
_port = _settings.web.bind.rsplit(":", 1)[-1]

bind = _settings.web.bind
workers = _settings.web.workers
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 2
accesslog = None  # nginx logs every request; a second log per request would cost throughput
errorlog = "-"
loglevel = "info"
proc_name = f"pronostico-web-{_port}"

# Prometheus counters from every worker of this instance, added up by /metrics; set before any worker imports
# prometheus_client. One directory per instance, emptied when the instance starts.
_metrics_dir = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or _settings.home / "prometheus" / f"web-{_port}")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)


def on_starting(server: Any) -> None:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    _metrics_dir.mkdir(parents=True, exist_ok=True)


def _runtime(worker: Any) -> Any:
    """The worker's app Runtime (app.runtime), if its app loaded."""
    return getattr(worker.wsgi, "extensions", {}).get("pronostico")


def post_worker_init(worker: Any) -> None:
    runtime = _runtime(worker)
    if runtime is not None:
        runtime.spool.prepare()  # the worker's spool segment is made now, not during its first prediction
    # The app is loaded here, in the worker (no preload_app: post_fork would come before it). What it holds now
    # lives as long as the worker, so the collector is told to leave it out: a full collection then scans a
    # request's objects, not the app's hundred thousand besides, a pause of ~80 ms on /models cut to a few.
    gc.collect()
    gc.freeze()


def worker_exit(server: Any, worker: Any) -> None:
    runtime = _runtime(worker)
    if runtime is not None:
        runtime.spool.close()  # flushes what the spool's interval flusher has not yet


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
