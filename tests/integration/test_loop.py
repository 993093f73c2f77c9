"""`mlops-lab loop` end to end, without Docker: a real `mlflow server` on PostgreSQL, the
service under its server logging to PostgreSQL, traffic replayed with feedback from a market
that moved. The loop retrains on it and promotes; the service follows; the same traffic again
teaches nothing new; with approval required, a winner waits until a person approves it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from mlflow import MlflowClient
from projects import PROJECT_ROOT, LabProject, challenge_payload, tiny_run
from receiver import JsonReceiver
from services import FEEDBACK_TOKEN
from waiting import read_until

pytestmark = pytest.mark.integration

RESULTS_PATH = PROJECT_ROOT / "bench" / "results" / "loop.json"
MODEL_NAME = "looped-price-category"
REFRESH_SECONDS = 2
# Manhattan's prices moved, Brooklyn's did not: the old champion ranks the two boroughs'
# listings as they were, so it must lose on the traffic's listings to a model that learnt it.
MOVED = ("--where", "borough=Manhattan", "--feedback", "--price-factor")
STAYED = ("--where", "borough=Brooklyn", "--feedback")


@pytest.fixture()
def receiver() -> Iterator[JsonReceiver]:
    with JsonReceiver() as receiving:
        yield receiving


def looped_lab(notify_url: str):
    """A tiny run of its own model and experiments, judged on small windows."""

    def change(config: dict) -> None:
        tiny_run(config)
        # Three pipelines run here: two folds are enough to pick between two candidates.
        config["training"]["cv_folds"] = 2
        config["tracking"].update(
            registered_model_name=MODEL_NAME, experiment_name="looped-price-category"
        )
        config["monitoring"]["experiment_name"] = "looped-monitoring"
        config["monitoring"]["minimum_window"] = 50
        config["monitoring"]["quality"]["minimum_feedback"] = 50
        # Traffic from two boroughs of five: any field drifting is an alert.
        config["monitoring"]["drift"]["alert_share"] = 0.05
        config["loop"].update(experiment_name="looped-loop", notify_url=notify_url)

    return change


def served_version(service_url: str) -> str:
    answer = requests.post(f"{service_url}/predict", json=challenge_payload(), timeout=30)
    answer.raise_for_status()
    return answer.json()["model_version"]


def loop_once(lab: LabProject, settings: dict[str, str]) -> dict:
    """Run `mlops-lab loop` as a scheduler would; its decision, the one line it prints."""
    turned = lab.run(["mlops-lab", "loop"], settings)
    assert turned.returncode == 0, turned.stdout[-2000:] + turned.stderr[-6000:]
    lines = turned.stdout.strip().splitlines()
    assert len(lines) == 1, turned.stdout
    return json.loads(lines[0])


def replay(lab: LabProject, service_url: str, settings: dict[str, str], factor: str) -> None:
    for options in ((*MOVED, factor), STAYED):
        command = ["mlops-lab", "replay", "--url", service_url, "--part", "all", *options]
        sent = lab.run(command, settings)
        assert sent.returncode == 0, sent.stderr[-3000:]


def test_the_loop_retrains_on_moved_prices_and_the_service_follows_then_waits_for_approval(
    mlflow_server, store_cluster, service_factory, receiver, tmp_path
):
    store = store_cluster.database("looped_predictions", "looped_service")
    settings = {"MLFLOW_TRACKING_URI": mlflow_server["uri"], "PREDICTION_LOG_URI": store}
    lab = LabProject(tmp_path / "lab")
    lab.edit_config(looped_lab(f"http://127.0.0.1:{receiver.port}/decisions"))
    lab.commit("the loop's settings")
    first = lab.run(["dvc", "repro"], settings)
    assert first.returncode == 0, first.stderr[-3000:]
    client = MlflowClient(mlflow_server["uri"])
    assert client.get_registered_model(MODEL_NAME).aliases == {"champion": "1"}
    service = service_factory(
        {
            **settings,
            "MODEL_URI": f"models:/{MODEL_NAME}@champion",
            "MODEL_REFRESH_SECONDS": str(REFRESH_SECONDS),
        }
    )
    assert service.wait_ready()["model_version"] == "1"
    feedback = {**settings, "FEEDBACK_TOKEN": FEEDBACK_TOKEN}

    replay(lab, service.url, feedback, "2")
    lock_before = (lab.path / "dvc.lock").read_text()
    decision = loop_once(lab, settings)
    assert decision["decision"] == "retrained and promoted", decision
    assert decision["monitor"]["alerts"] and decision["harvest"]["new"]
    assert decision["model"] == {
        "name": MODEL_NAME,
        "challenger": "2",
        "champion": "2",
        "previous_champion": "1",
    }
    recent = decision["scores"]["recent_traffic"]
    assert recent["challenger"] > recent["champion"], recent
    # What docs/loop.md quotes, kept from each run.
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(decision, indent=2))
    assert receiver.bodies == [decision]
    # The alias moved during the loop's promote stage: the service follows within its refresh.
    read_until(lambda: served_version(service.url), "2".__eq__, REFRESH_SECONDS + 5, "v2 served")
    # The working tree was left alone: the experiment holds the new model, the user applies it.
    assert (lab.path / "dvc.lock").read_text() == lock_before
    assert decision["experiment"]["name"] in lab.run(["dvc", "exp", "list", "--name-only"]).stdout

    replay(lab, service.url, feedback, "2")
    again = loop_once(lab, settings)
    assert again["decision"] == "nothing new to learn from", again
    assert again["monitor"]["alerts"] and not again["harvest"]["new"]
    assert client.get_registered_model(MODEL_NAME).aliases == {"champion": "2"}

    lab.edit_config(lambda config: config["loop"].update(require_approval=True))
    lab.commit("approval required")
    replay(lab, service.url, feedback, "3")
    waiting = loop_once(lab, settings)
    assert waiting["decision"] == "retrained, waits for approval", waiting
    assert "mlops-lab promote --approve 3" in waiting["reason"]
    assert client.get_registered_model(MODEL_NAME).aliases == {"champion": "2", "challenger": "3"}
    assert served_version(service.url) == "2"
    approved = lab.run(["mlops-lab", "promote", "--approve", "3"], settings)
    assert approved.returncode == 0, approved.stderr[-3000:]
    assert approved.stdout.strip() == "champion: v3 (was v2)"
    read_until(lambda: served_version(service.url), "3".__eq__, REFRESH_SECONDS + 5, "v3 served")
    refused = lab.run(["mlops-lab", "promote", "--approve", "3"], settings)
    assert refused.returncode == 1 and "v3 is the champion already" in refused.stderr
    assert [body["decision"] for body in receiver.bodies] == [
        "retrained and promoted",
        "nothing new to learn from",
        "retrained, waits for approval",
    ]
