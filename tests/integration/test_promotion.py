"""Promotion is the pipeline's last step: only a model that answered through the serving path
and beat the champion moves the alias, and the champion is what `make serve` serves."""

import filecmp
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient
from projects import (
    PROJECT_ROOT,
    LabProject,
    challenge_payload,
    free_port,
    make_worse,
    tiny_run,
    wait_until_ok,
)

from mlops_lab.common.tables import read_parquet
from mlops_lab.evaluation.prepared import HARVESTED_COLUMNS, split_like_notebook

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()


def own_model_name(project: LabProject, name: str) -> None:
    def rename(config: dict) -> None:
        config["tracking"]["registered_model_name"] = name

    project.edit_config(rename)
    project.commit(f"registered model {name}")


def read_json(project: LabProject, path: str) -> dict:
    return json.loads((project.path / path).read_text())


def test_make_serve_serves_the_champion_after_a_worse_rerun(small_project):
    small_project.edit_config(tiny_run)
    small_project.commit("two candidates")
    # The embedded store: no tracking server, as on a laptop.
    first = small_project.run(["dvc", "repro"])
    assert first.returncode == 0, first.stdout + first.stderr
    small_project.edit_config(make_worse)
    small_project.commit("a worse model")
    second = small_project.run(["dvc", "repro"])
    assert second.returncode == 0, second.stdout + second.stderr
    assert "v2 is not promoted" in second.stdout
    registration = read_json(small_project, "models/registration.json")
    assert registration["champion"]["version"] == "1"
    assert registration["challenger"] == {
        **registration["challenger"],
        "version": "2",
        "promoted": False,
        "local_path": "models/challenger",
    }

    # The champion's folder holds the registered champion's bytes; the challenger has its own.
    client = small_project.embedded_client()
    registered = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri("airbnb-price-category", "1"),
            dst_path=str(small_project.path.parent / "registered"),
            tracking_uri=client.tracking_uri,
        )
    )
    champion_dir = small_project.path / "models" / "price_category"
    for name in ("model.skops", "MLmodel", "requirements.txt"):
        assert filecmp.cmp(champion_dir / name, registered / name, shallow=False), name
    challenger = (
        small_project.path / "models" / "challenger" / "registered_model_meta"
    ).read_text()
    assert "model_version: '2'" in challenger

    # `make serve`, no MODEL_URI, no tracking server: the champion answers.
    (small_project.path / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "MODEL_URI", "PROMETHEUS_"))
    }
    log_path = small_project.path.parent / "serve.log"
    with log_path.open("w") as log:
        # -o: the environment is set up already (it is this test run's own).
        server = subprocess.Popen(
            ["make", "-o", ".venv/.installed", "serve", f"PORT={port}"],
            cwd=small_project.path,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ready = wait_until_ok(f"http://127.0.0.1:{port}/ready", server, log_path, "make serve")
        assert ready.json()["model_version"] == "1"
        answer = requests.post(
            f"http://127.0.0.1:{port}/predict", json=CHALLENGE, timeout=30
        ).json()
        assert answer["model_version"] == "1"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def stored_model_file(artifacts: Path, run_id: str) -> Path:
    """The model.skops the tracking server stores for the model logged by one run."""
    for mlmodel in artifacts.rglob("MLmodel"):
        if (
            f"run_id: {run_id}" in mlmodel.read_text()
            and (mlmodel.parent / "model.skops").is_file()
        ):
            return mlmodel.parent / "model.skops"
    raise AssertionError(f"no stored model of run {run_id} under {artifacts}")


def test_a_model_that_cannot_load_as_served_never_takes_the_alias(small_project, mlflow_server):
    small_project.edit_config(tiny_run)
    own_model_name(small_project, "unloadable-price-category")
    environment = {"MLFLOW_TRACKING_URI": mlflow_server["uri"]}
    first = small_project.run(["dvc", "repro"], environment)
    assert first.returncode == 0, first.stdout + first.stderr
    client = MlflowClient(mlflow_server["uri"])
    champion = client.get_model_version_by_alias("unloadable-price-category", "champion")

    # A second model is trained and registered, then its stored files go bad.
    small_project.edit_config(lambda config: config["training"].update(cv_random_state=2))
    small_project.commit("another training run")
    trained = small_project.run(["dvc", "repro", "explainability"], environment)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    challenger = read_json(small_project, "models/challenger.json")
    assert challenger["version"] == "2"
    stored_model_file(mlflow_server["artifacts"], challenger["run_id"]).write_bytes(b"broken")

    # The smoke stage loads it as the service would, and fails: promotion never runs.
    rest = small_project.run(["dvc", "repro"], environment)
    assert rest.returncode != 0
    assert "Running stage 'promote'" not in rest.stdout
    after = client.get_registered_model("unloadable-price-category").aliases
    assert after == {"champion": champion.version}
    registration = read_json(small_project, "models/registration.json")
    assert registration["champion"]["version"] == champion.version


def test_two_pipelines_racing_leave_the_better_model_champion(tmp_path, mlflow_server):
    environment = {"MLFLOW_TRACKING_URI": mlflow_server["uri"]}
    better, worse = LabProject(tmp_path / "better"), LabProject(tmp_path / "worse")
    for project in (better, worse):
        project.edit_config(tiny_run)
        own_model_name(project, "raced-price-category")
    worse.edit_config(make_worse)
    worse.commit("a worse model")

    # Both train at once against the same champion (none yet), up to their smoke stages.
    running = [
        subprocess.Popen(
            ["dvc", "repro", "prediction_app"],
            cwd=project.path,
            env=project.environment(environment),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for project in (better, worse)
    ]
    for process in running:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output
    better_version = read_json(better, "models/challenger.json")["version"]
    worse_version = read_json(worse, "models/challenger.json")["version"]

    # The better one reaches the alias check first, the worse one second.
    first = better.run(["dvc", "repro"], environment)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"v{better_version} becomes the champion" in first.stdout
    second = worse.run(["dvc", "repro"], environment)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"v{worse_version} is not promoted" in second.stdout
    assert f"champion v{better_version}" in second.stdout
    assert f"now it is v{better_version}" in second.stdout

    client = MlflowClient(mlflow_server["uri"])
    aliases = client.get_registered_model("raced-price-category").aliases
    assert aliases == {"champion": better_version, "challenger": worse_version}
    # The worse pipeline's own champion folder holds the better pipeline's model.
    assert read_json(worse, "models/registration.json")["champion"]["version"] == better_version
    meta = (worse.path / "models" / "price_category" / "registered_model_meta").read_text()
    assert f"model_version: '{better_version}'" in meta


def feedback_on_test_listings(project: LabProject, listings: int) -> None:
    """Truths sent for `listings` of the test part, as `mlops-lab harvest` writes them: the
    recent traffic's labelled listings."""
    prepared = read_parquet(project.path / "data" / "prepared" / "listings.parquet")
    test = prepared.loc[split_like_notebook(prepared, 0.15, 1).test_features.index[:listings]]
    harvested = project.path / "data" / "harvested" / "labelled_listings.parquet"
    test[HARVESTED_COLUMNS].to_parquet(harvested, index=False)


def test_the_gate_judges_a_challenger_on_recent_traffic_too(small_project):
    def judge_recent_traffic(config: dict) -> None:
        config["monitoring"]["minimum_window"] = 150
        config["promotion"]["recent_traffic_tolerance"] = 0.0

    small_project.edit_config(judge_recent_traffic)
    small_project.edit_config(tiny_run)
    small_project.commit("two candidates, recent traffic judged from 150 listings")
    better = (small_project.path / "config.yaml").read_text()
    small_project.edit_config(make_worse)
    small_project.commit("a worse model first")
    first = small_project.run(["dvc", "repro"])
    assert first.returncode == 0, first.stdout + first.stderr
    feedback_on_test_listings(small_project, 150)
    (small_project.path / "config.yaml").write_text(better)
    second = small_project.run(["dvc", "repro"])
    assert second.returncode == 0, second.stdout + second.stderr
    registration = read_json(small_project, "models/registration.json")
    reason = registration["challenger"]["reason"]
    # Better on the test part, and not worse on the listings recent callers labelled.
    assert reason.startswith("v2 becomes the champion: v2 scores"), reason
    found = re.search(r"recent traffic: (0\.\d+) against the champion's (0\.\d+) on 150", reason)
    assert found and float(found[1]) >= float(found[2]), reason
    assert registration["champion"]["version"] == "2"
