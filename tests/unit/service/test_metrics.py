"""The service's metrics merged across live worker processes, as /metrics serves them."""

import os
import subprocess
import sys
from contextlib import contextmanager

from calls import metric_text_samples

from mlops_lab.service.metrics import ServiceMetrics

# A worker that loads the models given in turn, as the follower does, then stays alive.
WORKER = """
import sys
from mlops_lab.service.metrics import ServiceMetrics
metrics = ServiceMetrics()
metrics.workers.set(1)
previous = None
for version in sys.argv[1:]:
    if previous is not None:
        metrics.model_info.labels("model", previous, "uri").set(0)
    metrics.model_info.labels("model", version, "uri").set(1)
    previous = version
print("loaded", flush=True)
sys.stdin.read()
"""


@contextmanager
def live_workers(tmp_path, monkeypatch, loads):
    """Live worker processes on one multiprocess folder, each loading its versions in turn
    (none: a worker whose first load failed), started one after the other; this process then
    reads that folder. The workers stop when the block ends."""
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = []
    try:
        for versions in loads:
            worker = subprocess.Popen(
                [sys.executable, "-c", WORKER, *versions],
                env=environment,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            workers.append(worker)
            assert worker.stdout.readline() == "loaded\n"
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        yield
    finally:
        for worker in workers:
            worker.communicate("")


def test_a_worker_without_a_model_is_counted(tmp_path, monkeypatch):
    with live_workers(tmp_path, monkeypatch, [["1"], []]):
        without = ServiceMetrics().workers_without_model()
    assert without == 1


def test_every_worker_with_a_model_leaves_none_without(tmp_path, monkeypatch):
    with live_workers(tmp_path, monkeypatch, [["1"], ["1", "2"]]):
        without = ServiceMetrics().workers_without_model()
    assert without == 0


def test_model_info_counts_the_live_workers_serving_each_model(tmp_path, monkeypatch):
    # One worker loads v1; then the other moves from v1 to v2, after it.
    with live_workers(tmp_path, monkeypatch, [["1"], ["1", "2"]]):
        samples = metric_text_samples(ServiceMetrics().exposition().decode())
    served = {
        dict(labels)["model_version"]: value
        for (name, labels), value in samples.items()
        if name == "model_info"
    }
    assert served == {"1": 1, "2": 1}
