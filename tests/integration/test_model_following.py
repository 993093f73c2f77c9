"""The service follows what MODEL_URI names with no signal and no restart: a new champion in
the registry, or the folder a promoting `dvc repro` replaces, is loaded aside, checked on the
smoke stage's payloads and served; a model that fails either is refused and the one served
stays; `mlops-lab rollback` brings an earlier one back the same way."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pytest
import requests
from calls import Callers, metric_samples, metric_sum, prediction_callers
from mlflow import MlflowClient
from projects import LabProject, challenge_payload, make_worse, tiny_run
from services import Service
from waiting import read_until

from mlops_lab.tracking.registry import GATE_PASSED, GATE_TAG, ROLLBACK_TAG

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()
REFRESH_SECONDS = 2
# The bound: a new model is served this long after its name moves, at most.
FOLLOWED_WITHIN = REFRESH_SECONDS + 5
FOLLOWING = {"MODEL_REFRESH_SECONDS": str(REFRESH_SECONDS)}
REFUSALS = "model_refusals_total"
# The test services' workers (WEB_CONCURRENCY).
WORKERS = 2


def steady_callers(service: Service) -> Callers:
    """Four clients sending single predictions without pause; each answer's id says which
    client asked."""
    return prediction_callers(service.url, CHALLENGE)


def versions_by_client(callers: Callers) -> dict[str, list[str]]:
    """The model version of each answer, per client, in the order each client got them."""
    versions: dict[str, list[str]] = {}
    for answer in callers.answered():
        versions.setdefault(answer["id"].split("-")[0], []).append(answer["model_version"])
    return versions


def wait_until_all_serve(callers: Callers, version: str) -> None:
    """Every client's last answers name `version` within FOLLOWED_WITHIN of being called."""
    read_until(
        lambda: versions_by_client(callers),
        lambda versions: len(versions) == 4 and all(v[-1] == version for v in versions.values()),
        FOLLOWED_WITHIN,
        f"every client answered by v{version}",
        lambda: str({client: v[-3:] for client, v in versions_by_client(callers).items()}),
    )


def models_loaded(service: Service) -> list[str]:
    """The version of each model a worker of the service loaded, in the order they logged it."""
    lines = service.log_path.read_text().splitlines()
    return [json.loads(line)["model_version"] for line in lines if '"model loaded"' in line]


def wait_until_every_worker_serves(service: Service, loaded_before: int, version: str) -> None:
    """Every worker has loaded `version` since the service had logged `loaded_before` loads,
    within FOLLOWED_WITHIN: clients on kept-alive connections may all be on one worker."""
    read_until(
        lambda: models_loaded(service)[loaded_before:],
        lambda loads: loads.count(version) >= WORKERS,
        FOLLOWED_WITHIN,
        f"every worker serving v{version}",
    )


def in_order(versions: list[str], order: list[str]) -> bool:
    """Whether a client's versions run through `order` without going back: v2 never answers
    after v3 has, for instance, on one connection."""
    positions = [order.index(version) for version in versions]
    return positions == sorted(positions)


def relabel_rollback(callers: Callers) -> list[list[str]]:
    """Each client's versions, with v1 after v2 named 1b: the rollback's v1 comes last."""
    relabelled = []
    for versions in versions_by_client(callers).values():
        seen_two = False
        client = []
        for version in versions:
            seen_two = seen_two or version == "2"
            client.append("1b" if version == "1" and seen_two else version)
        relabelled.append(client)
    return relabelled


def register_broken_version(
    client: MlflowClient, name: str, source: tuple[str, str], home: Path
) -> str:
    """A new version of `name` with the files of a `source` version but an unreadable model."""
    files = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(*source),
            dst_path=str(home / "source"),
            tracking_uri=client.tracking_uri,
        )
    )
    (files / "model.skops").write_bytes(b"broken")
    experiment = client.get_experiment_by_name("Default").experiment_id
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(files), "model")
    client.set_terminated(run.info.run_id)
    return client.create_model_version(
        name, f"{run.info.artifact_uri}/model", run.info.run_id
    ).version


def test_the_service_follows_the_alias_refuses_a_broken_version_and_rolls_back(
    trained_lab, mlflow_server, service_factory, tmp_path
):
    uri = mlflow_server["uri"]
    client = MlflowClient(uri)
    trained = client.get_model_version_by_alias("served-price-category", "champion")
    name = "followed-price-category"
    client.create_registered_model(name)
    for version in ("1", "2"):
        client.create_model_version(name, f"models:/served-price-category/{trained.version}")
        # What promote leaves on a version it makes champion: rollback takes only those.
        client.set_model_version_tag(name, version, GATE_TAG, GATE_PASSED)
    client.set_registered_model_alias(name, "champion", "1")
    service = service_factory(
        {"MLFLOW_TRACKING_URI": uri, "MODEL_URI": f"models:/{name}@champion", **FOLLOWING}
    )
    assert service.wait_ready()["model_version"] == "1"
    broken = register_broken_version(
        client, name, ("served-price-category", trained.version), tmp_path
    )
    lab = LabProject(tmp_path / "lab")
    lab.edit_config(lambda config: config["tracking"].update(registered_model_name=name))

    with steady_callers(service) as callers:
        callers.wait_for_calls(20)
        loaded_before = len(models_loaded(service))
        client.set_registered_model_alias(name, "champion", "2")
        wait_until_all_serve(callers, "2")
        # Else a worker still loading v2 finds the alias moved on when it is done, and keeps v1.
        wait_until_every_worker_serves(service, loaded_before, "2")

        client.set_registered_model_alias(name, "champion", broken)
        refused = read_until(
            lambda: metric_sum(metric_samples(service.url), REFUSALS, model_version=broken),
            lambda count: count == 2,
            FOLLOWED_WITHIN + 30,
            f"v{broken} refused by both workers",
        )
        ready = requests.get(f"{service.url}/ready", timeout=10)
        answered_before = callers.calls
        # Not tried again while the alias stays: three more looks of each worker, then count.
        time.sleep(3 * REFRESH_SECONDS)
        callers.wait_for_calls(20)
        refused_later = metric_sum(metric_samples(service.url), REFUSALS, model_version=broken)
        served_meanwhile = {a["model_version"] for a in callers.answered()[answered_before:]}

        rolled_back = lab.run(
            ["mlops-lab", "rollback", "--to", "1", "--reason", "test"], {"MLFLOW_TRACKING_URI": uri}
        )
        assert rolled_back.returncode == 0, rolled_back.stderr[-3000:]
        wait_until_all_serve(callers, "1")
        callers.wait_for_calls(20)

    assert callers.failures() == []
    assert all(in_order(v, ["1", "2", "1b"]) for v in relabel_rollback(callers))
    assert ready.status_code == 200
    assert ready.json()["model_version"] == "2"
    assert ready.json()["refused"]["model_version"] == broken
    assert ready.json()["refused"]["reason"] == "BadZipFile: File is not a zip file"
    assert refused == refused_later == 2
    assert served_meanwhile == {"2"}
    assert client.get_registered_model(name).aliases == {"champion": "1"}
    assert "test" in client.get_model_version(name, "1").tags[ROLLBACK_TAG]
    assert "rolled back to v1" in client.get_model_version(name, broken).tags[ROLLBACK_TAG]
    assert (lab.path / "models" / "price_category" / "MLmodel").is_file()


def test_make_serve_follows_a_promoting_repro_and_a_rollback_of_the_folder(tmp_path):
    lab = LabProject(tmp_path / "lab")
    lab.edit_config(tiny_run)
    better = (lab.path / "config.yaml").read_text()
    lab.edit_config(make_worse)
    lab.commit("a weak first model")
    # The embedded store: no tracking server, as on a laptop.
    first = lab.run(["dvc", "repro"])
    assert first.returncode == 0, first.stdout + first.stderr
    service = Service(FOLLOWING, tmp_path / "service.log", cwd=lab.path)
    try:
        assert service.wait_ready()["model_version"] == "1"
        with steady_callers(service) as callers:
            callers.wait_for_calls(20)
            (lab.path / "config.yaml").write_text(better)
            lab.commit("a better model")
            loaded_before = len(models_loaded(service))
            promoted = lab.run(["dvc", "repro"])
            assert promoted.returncode == 0, promoted.stdout + promoted.stderr
            assert "→ CHAMPION" in promoted.stdout
            wait_until_all_serve(callers, "2")
            wait_until_every_worker_serves(service, loaded_before, "2")
            rolled_back = lab.run(["mlops-lab", "rollback", "--reason", "test"])
            assert rolled_back.returncode == 0, rolled_back.stderr[-3000:]
            assert "champion: v1" in rolled_back.stdout
            wait_until_all_serve(callers, "1")
            callers.wait_for_calls(20)
    finally:
        service.stop()
    assert callers.failures() == []
    assert all(in_order(v, ["1", "2", "1b"]) for v in relabel_rollback(callers))
