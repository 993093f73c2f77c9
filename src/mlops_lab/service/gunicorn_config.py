"""gunicorn settings for the prediction service: `gunicorn -c python:<this module> <app>`.

One worker per core, each on one OpenMP/BLAS thread (a one-listing prediction is faster on
one thread than fanned out), a few threads per worker for keep-alive clients, graceful
shutdown on SIGTERM, and a graceful reload (new champion) on SIGHUP.
"""

import logging
import os
import shutil
import sys
import tempfile

# One thread each for OpenMP and BLAS: workers already use every core. Set first, before this
# module imports numpy below.
os.environ.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


def _folder_from(variable: str, prefix: str) -> tuple[str, bool]:
    """The folder the variable names, else a new temporary one set in it; and whether it is new."""
    if variable in os.environ:
        return os.environ[variable], False
    os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    return os.environ[variable], True


# Metrics from every worker are merged through files in this folder. prometheus_client
# chooses file-backed values when it is first imported, so this comes before any import of it.
_metrics_dir, _metrics_dir_is_ours = _folder_from("PROMETHEUS_MULTIPROC_DIR", "mlops-lab-metrics-")

from mlops_lab.service.environment import SLOTS_VARIABLE  # noqa: E402
from mlops_lab.service.logs import logging_config  # noqa: E402

# The workers' shared explanation slots: one folder per service.
_slots_dir, _slots_dir_is_ours = _folder_from(SLOTS_VARIABLE, "mlops-lab-explanations-")


def _remove_our_folders() -> None:
    """Remove the temporary folders made above: every start would otherwise leave two behind."""
    for folder, ours in ((_metrics_dir, _metrics_dir_is_ours), (_slots_dir, _slots_dir_is_ours)):
        if ours:
            shutil.rmtree(folder)


from mlops_lab.kernel.config import ConfigError  # noqa: E402
from mlops_lab.service.settings import ServiceSettings, SettingsError  # noqa: E402

# A bad config.yaml or environment stops the start with one line, not a traceback per worker.
try:
    ServiceSettings.from_environment(os.environ)
except (ConfigError, SettingsError) as error:
    print(f"error: {error}", file=sys.stderr)
    _remove_our_folders()
    sys.exit(1)

# The app's libraries (scikit-learn, MLflow, Flask) are imported once, here: each worker forks
# with them loaded and answers /health within a second instead of after five of imports. The
# app itself, and so the model, is still made in each worker (not preloaded), so SIGHUP reloads
# the champion.
import mlops_lab.service.app  # noqa: E402,F401

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
# gthread, stopping as soon as its requests are answered (service/worker.py).
worker_class = "mlops_lab.service.worker.PromptThreadWorker"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# On SIGTERM, workers stop accepting and get this long to answer the requests they have.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", 30))
# A worker loads its model before it serves; a registry download can take a while.
timeout = 120
keepalive = 5
accesslog = None  # the app logs one JSON line per request itself
# ...so gunicorn writes none: with logconfig_dict set it would, a second line per request.
logger_class = "mlops_lab.service.logs.GunicornLogger"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# Every line JSON: gunicorn's own, the app's, and Python's warnings.
logconfig_dict = logging_config(loglevel)
logging.captureWarnings(True)


def on_starting(server):
    """Start from empty metric files: counters restart with the service. Make the table in
    which workers share how many connections each holds (service/balance.py)."""
    from mlops_lab.service.balance import ConnectionShares

    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
    server.connection_shares = ConnectionShares.create()


def pre_fork(server, worker):
    """Give the worker about to be forked its row of the connection table."""
    worker.connection_shares = server.connection_shares
    worker.share_slot = server.connection_shares.reserve()


def child_exit(server, worker):
    """Drop an exited worker's live gauges (its model_info) from the merged metrics, and free
    its row of the connection table."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    if worker.share_slot is not None:
        server.connection_shares.release(worker.share_slot)


def worker_exit(server, worker):
    """Write the worker's buffered predictions: on SIGTERM it answers what it has, then this."""
    from mlops_lab.service.app import close_app

    app = getattr(worker, "wsgi", None)
    if app is not None:
        close_app(app)


def on_exit(server):
    """The service's temporary folders go with it."""
    _remove_our_folders()
