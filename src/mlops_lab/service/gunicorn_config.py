"""gunicorn settings for the prediction service: `gunicorn -c python:<this module> <app>`.

One worker per core, each on one OpenMP/BLAS thread (a one-listing prediction is faster on
one thread than fanned out), a few threads per worker for keep-alive clients, graceful
shutdown on SIGTERM, and a graceful reload (new champion) on SIGHUP.
"""

import logging
import os
import shutil
import tempfile

from mlops_lab.service.logs import logging_config
from mlops_lab.service.slots import SLOTS_VARIABLE

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# On SIGTERM, workers stop accepting and get this long to answer the requests they have.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", 30))
# A worker loads its model before it serves; a registry download can take a while.
timeout = 120
keepalive = 5
accesslog = None  # the app logs one JSON line per request itself
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# Every line JSON: gunicorn's own, the app's, and Python's warnings.
logconfig_dict = logging_config(loglevel)
logging.captureWarnings(True)
# One thread each for OpenMP and BLAS: workers already use every core.
# Set here, before any worker imports numpy or scikit-learn (the app is not preloaded).
os.environ.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})

# Metrics from every worker are merged through files in this folder. prometheus_client
# chooses file-backed values when it is first imported, so this comes before any import of it.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="mlops-lab-metrics-")
)


# The workers' shared explanation slots: one folder per service.
os.environ.setdefault(SLOTS_VARIABLE, tempfile.mkdtemp(prefix="mlops-lab-explanations-"))


def on_starting(server):
    """Start from empty metric files: counters restart with the service."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):
    """Drop an exited worker's live gauges (its model_info) from the merged metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
