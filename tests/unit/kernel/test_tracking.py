import socket
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mlops_lab.kernel.tracking import (
    Lineage,
    TrackingUnavailable,
    check_reachable,
    pipeline_id,
    resolve_tracking,
    sha256_file,
    stage_run,
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


def test_an_unreachable_server_is_named_at_once():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable, match=uri):
        check_reachable(uri)
    assert time.monotonic() - started < 5


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


@pytest.fixture()
def embedded_tracking(tmp_path):
    tracking = resolve_tracking({}, tmp_path, Path("mlruns"), "experiment", "model")
    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    yield tracking
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def test_a_stage_stopped_anywhere_leaves_no_run_running(embedded_tracking):
    # A stop (SIGTERM raises SystemExit) can land inside MLflow's start of a run: the run is
    # then on the stack of active runs and never exited, or in the store and on no stack.
    lineage = Lineage("pipeline", "deadbeef", False, "0" * 64)
    with pytest.raises(SystemExit), stage_run(embedded_tracking, lineage, "training") as run:
        mlflow.start_run(run_name="left on the stack", nested=True)
        MlflowClient().create_run(
            run.info.experiment_id,
            tags={"mlflow.parentRunId": run.info.run_id},
            run_name="on no stack",
        )
        raise SystemExit(143)
    assert mlflow.active_run() is None
    runs = MlflowClient().search_runs([run.info.experiment_id])
    statuses = {found.info.run_name: found.info.status for found in runs}
    assert set(statuses) == {"pipeline-pipeline", "training", "left on the stack", "on no stack"}
    assert set(statuses.values()) == {"FAILED"}, statuses
