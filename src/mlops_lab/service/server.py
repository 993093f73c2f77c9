"""The service's server: granian's WSGI interface, set up through its constructor alone, a worker
per core on one OpenMP/BLAS thread each (one listing is faster on one thread)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from mlops_lab.service.environment import METRICS_VARIABLE, SLOTS_VARIABLE
from mlops_lab.service.threads import repeat_stop_signals_to_the_main_thread

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class ServerOptions:
    """`mlops-lab serve`'s options (docs/serving.md)."""

    host: str
    port: int
    workers: int
    threads: int
    grace_seconds: int  # to answer what they hold when told to stop
    reload_seconds: float  # for a new worker to load the model before SIGHUP stops an old one
    log_level: str
    stop_delay_seconds: float = 0.0  # of answering new requests after SIGTERM, before stopping


@contextmanager
def shared_folder(variable: str, prefix: str) -> Iterator[None]:
    """The variable's folder, emptied (counters restart with the service), else a temporary one."""
    given = os.environ.get(variable)
    folder = os.environ[variable] = given or tempfile.mkdtemp(prefix=prefix)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(os.environ.pop(variable), ignore_errors=True)


def serve(options: ServerOptions) -> None:
    """Serve the app until SIGTERM (after the stop delay) or SIGINT; exit 1 on a bad setting."""
    if options.stop_delay_seconds > 0:
        sys.exit(serve_with_stop_delay(options))
    serve_until_stopped(options)


def serve_with_stop_delay(options: ServerOptions) -> int:
    """Run the server in a child process that hears of SIGTERM only after the stop delay, and
    return its exit code: a front door that finds replicas by DNS still sends new requests to
    this one until its answer expires, and Swarm has no pre-stop hook to wait that out."""
    server = multiprocessing.get_context("fork").Process(
        target=serve_until_stopped, args=(replace(options, stop_delay_seconds=0.0),)
    )
    server.start()
    stopping = threading.Event()

    def stop_later(signal_number: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            print(
                f"Told to stop: answering for {options.stop_delay_seconds:g} s more, "
                "while the front door forgets this replica",
                file=sys.stderr,
                flush=True,
            )
            timer = threading.Timer(options.stop_delay_seconds, pass_on, (signal_number, None))
            timer.daemon = True
            timer.start()

    def pass_on(signal_number: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # it has stopped: nothing to tell
            os.kill(server.pid, signal_number)

    signal.signal(signal.SIGTERM, stop_later)
    # Ctrl-C reaches the whole process group anyway; a reload goes on at once.
    signal.signal(signal.SIGINT, pass_on)
    signal.signal(signal.SIGHUP, pass_on)
    server.join()
    # As a shell reports a process a signal ended.
    return server.exitcode if server.exitcode >= 0 else 128 - server.exitcode


def serve_until_stopped(options: ServerOptions) -> None:
    """Serve the app until SIGTERM or SIGINT; exit 1 with one line on a bad setting."""
    # Before numpy and prometheus_client are imported: each reads its variables once.
    os.environ.update(ONE_THREAD)
    repeat_stop_signals_to_the_main_thread()
    with (
        shared_folder(METRICS_VARIABLE, "mlops-lab-metrics-"),
        shared_folder(SLOTS_VARIABLE, "mlops-lab-explanations-"),
    ):
        from granian import Granian
        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP1Settings
        from granian.log import LogLevels

        from mlops_lab.config import ConfigError
        from mlops_lab.service.logs import logging_config
        from mlops_lab.service.settings import ServiceSettings, SettingsError

        try:  # one line for a bad config.yaml or environment, not one per worker
            ServiceSettings.from_environment(os.environ)
        except (ConfigError, SettingsError) as error:
            sys.exit(f"error: {error}")
        # Workers fork with the libraries loaded, then each loads the model (anew on SIGHUP).
        import mlops_lab.service.app  # noqa: F401

        Granian(
            "mlops_lab.service.app:served_app",
            factory=True,
            address=options.host,
            port=options.port,
            interface=Interfaces.WSGI,
            http=HTTPModes.http1,
            workers=options.workers,
            blocking_threads=options.threads,
            http1_settings=HTTP1Settings(header_read_timeout=10_000),
            log_level=LogLevels(options.log_level),
            log_dictconfig=logging_config(options.log_level),
            respawn_failed_workers=True,
            respawn_interval=options.reload_seconds,
            workers_kill_timeout=options.grace_seconds,
        ).serve()
