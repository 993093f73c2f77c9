"""The whole pipeline under `dvc repro`, tracked by a real mlflow server on real PostgreSQL."""

import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from projects import make_worse

MODEL_NAME = "airbnb-price-category"
STAGES = {"pipeline", "data_prep", "training", "explainability", "prediction_app", "promote"}
PLOTS = {"shap_mean_abs.png", "shap_beeswarm.png", "confusion_matrix.png", "per_class_metrics.png"}

pytestmark = pytest.mark.integration


def runs_of(client: MlflowClient, experiment_id: str, pipeline_id: str) -> dict[str, object]:
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`mlops_lab.pipeline_id` = '{pipeline_id}'"
    )
    return {run.data.tags["mlops_lab.stage"]: run for run in runs}


def test_dvc_repro_registers_tracks_and_keeps_the_better_champion(
    small_project, mlflow_server, challenge_payload, lab_config, tmp_path
):
    environment = {"MLFLOW_TRACKING_URI": mlflow_server["uri"]}
    first = small_project.run(["dvc", "repro"], environment)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "→ CHAMPION" in first.stdout

    # The server is named to each call: MLflow's process-wide URIs are left as they are.
    client = MlflowClient(mlflow_server["uri"], registry_uri=mlflow_server["uri"])
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.version == "1"

    # From the model version to its training run, the candidates, data_prep and the plots.
    training_run = client.get_run(champion.run_id)
    pipeline_id = training_run.data.tags["mlops_lab.pipeline_id"]
    experiment_id = training_run.info.experiment_id
    stages = runs_of(client, experiment_id, pipeline_id)
    assert set(stages) == STAGES
    pipeline_run = stages["pipeline"]
    for stage in STAGES - {"pipeline"}:
        assert stages[stage].info.status == "FINISHED"
        assert stages[stage].data.tags["mlflow.parentRunId"] == pipeline_run.info.run_id
        assert stages[stage].data.tags["mlops_lab.git_commit"] == (
            small_project.run(["git", "rev-parse", "HEAD"]).stdout.strip()
        )
        assert stages[stage].data.tags["mlops_lab.git_dirty"] == "false"
        assert len(stages[stage].data.tags["mlops_lab.raw_data_sha256"]) == 64
    assert champion.tags["mlops_lab.data_prep_run_id"] == stages["data_prep"].info.run_id
    candidates = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{training_run.info.run_id}'",
    )
    assert {run.data.tags["mlops_lab.candidate"] for run in candidates} == {
        candidate.name for candidate in lab_config.training.candidates
    }
    for run in candidates:
        for view in ("full", "required"):
            assert {
                f"cv_{view}_roc_auc_ovr",
                f"test_{view}_accuracy",
                f"test_{view}_roc_auc_ovr",
                f"test_{view}_macro_f1",
                f"test_{view}_recall_lux",
            } <= set(run.data.metrics)
        assert "cv_selection_score" in run.data.metrics
    plots = {
        item.path.split("/")[-1]
        for item in client.list_artifacts(champion.run_id, "explainability")
    }
    assert plots >= PLOTS

    # Artifacts went through the server into its own store, not onto a shared path.
    stored = {path.name for path in mlflow_server["artifacts"].rglob("*") if path.is_file()}
    assert {"model.skops", "MLmodel"} <= stored
    assert stored >= PLOTS

    # The registered model loads as a client would load it and answers the challenge payload.
    # (MLflow 3 looks a models:/ URI up in the process-wide registry, whatever URI it is given.)
    downloaded = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(MODEL_NAME, champion.version),
        dst_path=str(tmp_path / "champion"),
        tracking_uri=mlflow_server["uri"],
    )
    model = mlflow.sklearn.load_model(downloaded)
    assert model.predict(pd.DataFrame([challenge_payload]))[0] in {"low", "mid", "high", "lux"}
    smoke = json.loads((small_project.path / "reports" / "prediction_smoke.json").read_text())
    assert smoke["model_version"] == "1"
    assert smoke["predictions"][0]["id"] == 1001

    # A second, worse run is registered and answers, but does not take the champion alias.
    small_project.edit_config(make_worse)
    small_project.commit("a worse model")
    second = small_project.run(["dvc", "repro"], environment)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "→ CHALLENGER" in second.stdout
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == "1"
    assert client.get_model_version_by_alias(MODEL_NAME, "challenger").version == "2"
    smoke = json.loads((small_project.path / "reports" / "prediction_smoke.json").read_text())
    assert smoke["model_version"] == "2"
    registration = json.loads((small_project.path / "models" / "registration.json").read_text())
    assert registration["champion"]["version"] == "1"
    assert registration["challenger"]["version"] == "2"
    assert not registration["challenger"]["promoted"]
    # The end of `make run` says so in a few lines.
    summary = small_project.run(["mlops-lab", "summary"], environment)
    assert summary.returncode == 0, summary.stderr
    assert f"registered as {MODEL_NAME} v2" in summary.stdout
    assert "the champion, which serves, is v1; v2 is not" in summary.stdout

    # Nothing changed since: a third repro runs no stage.
    third = small_project.run(["dvc", "repro"], environment)
    assert third.returncode == 0
    assert "Running stage" not in third.stdout
