import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlops_lab.tracking.runs import (
    Lineage,
    TrackingUnavailable,
    check_reachable,
    pipeline_id,
    resolve_tracking,
    sha256_file,
)


def test_embedded_store_when_no_tracking_uri(tmp_path):
    tracking = resolve_tracking({}, tmp_path, Path("mlruns"), "experiment", "model")
    assert tracking.uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert tracking.artifact_location == (tmp_path / "mlruns" / "artifacts").as_uri()


def test_tracking_uri_from_environment_leaves_artifacts_to_the_server(tmp_path):
    tracking = resolve_tracking(
        {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}, tmp_path, Path("mlruns"), "e", "m"
    )
    assert tracking.uri == "http://mlflow:5000"
    assert tracking.artifact_location is None


def test_a_server_that_refuses_connections_is_named_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(TrackingUnavailable, match=rf"{re.escape(uri)} is not reachable"):
        check_reachable(uri)


def test_a_server_that_does_not_answer_within_the_client_timeout_is_named_unreachable():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        # Connections are accepted by the kernel; no request is ever read, nor answered.
        silent.listen()
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        expected = rf"{re.escape(uri)} is not reachable \(ReadTimeout\)"
        with pytest.raises(TrackingUnavailable, match=expected):
            check_reachable(uri, timeout_seconds=0.5)


def test_local_stores_need_no_check():
    check_reachable("sqlite:///nowhere/mlflow.db")


def test_pipeline_id_from_environment_or_fresh_outside_dvc():
    assert pipeline_id({"MLOPS_LAB_PIPELINE_ID": "abc"}) == "abc"
    assert pipeline_id({}) != pipeline_id({})


def test_lineage_tags():
    tags = Lineage("p1", "deadbeef", True, "0" * 64).tags()
    assert tags["mlops_lab.pipeline_id"] == "p1"
    assert tags["mlops_lab.git_dirty"] == "true"
    assert tags["mlflow.source.git.commit"] == "deadbeef"


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path).startswith("ba7816bf")


# The stage runs in its own process: MLflow keeps the tracking URI, the registry URI and the
# experiment as process-wide state (and exports them to the environment), which would leak into
# every later test of the session.
STOPPED_STAGE = """
import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from mlops_lab.tracking.runs import Lineage, resolve_tracking, stage_run

tracking = resolve_tracking({}, Path(sys.argv[1]), Path("mlruns"), "experiment", "model")
with stage_run(tracking, Lineage("pipeline", "deadbeef", False, "0" * 64), "training") as run:
    # A stop (SIGTERM raises SystemExit) can land inside MLflow's start of a run: the run is
    # then on the stack of active runs and never exited, or in the store and on no stack.
    mlflow.start_run(run_name="left on the stack", nested=True)
    MlflowClient().create_run(
        run.info.experiment_id,
        tags={"mlflow.parentRunId": run.info.run_id},
        run_name="on no stack",
    )
    raise SystemExit(143)
"""


def test_a_stage_stopped_anywhere_leaves_no_run_running(tmp_path):
    stopped = subprocess.run(
        [sys.executable, "-c", STOPPED_STAGE, str(tmp_path)],
        env={key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")},
        capture_output=True,
        text=True,
    )
    assert stopped.returncode == 143, stopped.stderr
    store = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    experiment = client.get_experiment_by_name("experiment")
    statuses = {
        run.info.run_name: run.info.status for run in client.search_runs([experiment.experiment_id])
    }
    assert set(statuses) == {"pipeline-pipeline", "training", "left on the stack", "on no stack"}
    assert set(statuses.values()) == {"FAILED"}, statuses
