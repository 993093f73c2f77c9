"""The prediction service's server: granian's WSGI interface, set up through its public
constructor and nothing else.

One worker process per core, each on one OpenMP/BLAS thread (a one-listing prediction is faster
on one thread than fanned out), a few threads per worker. SIGTERM drains: workers answer what
they hold, and each writes its buffered predictions as its main thread ends
(service/prediction_log.py). SIGHUP replaces the workers one at a time (a new champion)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from mlops_lab.service.environment import METRICS_VARIABLE, SLOTS_VARIABLE

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextmanager
def shared_folder(variable: str, prefix: str) -> Iterator[str]:
    """The folder the variable names, else a new temporary one set in it that goes with the
    service: every start would otherwise leave one behind."""
    if variable in os.environ:
        yield os.environ[variable]
        return
    os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    try:
        yield os.environ[variable]
    finally:
        shutil.rmtree(os.environ.pop(variable), ignore_errors=True)


@dataclass(frozen=True)
class ServerOptions:
    """How the service is served (`mlops-lab serve`'s options, or their variables)."""

    host: str
    port: int
    workers: int
    threads: int
    # How long workers get to answer what they hold when told to stop.
    grace_seconds: int
    # How long a new worker gets to load the model before SIGHUP stops the old one it replaces.
    reload_seconds: float
    log_level: str


def serve(options: ServerOptions) -> None:
    """Serve the app until SIGTERM or SIGINT; exit 1 with one line on a bad setting."""
    # Before numpy and prometheus_client are imported: each reads its variables once.
    os.environ.update(ONE_THREAD)
    with ExitStack() as folders:
        metrics = folders.enter_context(shared_folder(METRICS_VARIABLE, "mlops-lab-metrics-"))
        folders.enter_context(shared_folder(SLOTS_VARIABLE, "mlops-lab-explanations-"))
        # Counters restart with the service.
        for name in os.listdir(metrics):
            os.remove(os.path.join(metrics, name))
        from granian import Granian
        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP1Settings
        from granian.log import LogLevels

        from mlops_lab.kernel.config import ConfigError
        from mlops_lab.service.logs import logging_config
        from mlops_lab.service.settings import ServiceSettings, SettingsError

        # A bad config.yaml or environment stops the start with one line, not one per worker.
        try:
            ServiceSettings.from_environment(os.environ)
        except (ConfigError, SettingsError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        # The app's libraries are imported once, here: workers fork with them loaded. The app,
        # and so the model, is made in each worker, so that SIGHUP loads the champion anew.
        import mlops_lab.service.app  # noqa: F401

        Granian(
            "mlops_lab.service.app:served_app",
            factory=True,
            address=options.host,
            port=options.port,
            interface=Interfaces.WSGI,
            http=HTTPModes.http1,
            websockets=False,
            workers=options.workers,
            blocking_threads=options.threads,
            http1_settings=HTTP1Settings(header_read_timeout=10_000),
            log_level=LogLevels(options.log_level),
            log_dictconfig=logging_config(options.log_level),
            respawn_failed_workers=True,
            respawn_interval=options.reload_seconds,
            workers_kill_timeout=options.grace_seconds,
        ).serve()
