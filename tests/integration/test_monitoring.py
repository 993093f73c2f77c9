"""`mlops-lab monitor` on the log of the service, fed by `mlops-lab replay`: the
test part as it is drifts nowhere, a shifted sample drifts where it was shifted, the quality
figures are those of the logged answers, and the report opens in a real browser."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import chromium, rendered_body, screenshot
from mlflow import MlflowClient
from services import FEEDBACK_TOKEN, ready_service
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sqlalchemy import create_engine, select

from mlops_lab.kernel.prediction_store import FEEDBACK, PREDICTIONS

pytestmark = pytest.mark.integration

SHIFTED = ("--where", "borough=Manhattan", "--where", "room_type=Entire home/apt")
CATEGORIES = ["low", "mid", "high", "lux"]


@dataclass
class Monitored:
    """One monitor run: its exit status, what it printed, and its files, kept."""

    returncode: int
    stdout: str
    stderr: str
    summary: dict
    report: Path


def monitor(lab, settings: dict[str, str], keep: Path, *options: str) -> Monitored:
    result = lab.run(["mlops-lab", "monitor", *options], settings)
    report_dir = lab.path / "reports" / "monitoring"
    keep.mkdir(parents=True)
    summary = {}
    if result.returncode in (0, 3):
        shutil.copy(report_dir / "report.html", keep / "report.html")
        summary = json.loads((report_dir / "summary.json").read_text())
    return Monitored(result.returncode, result.stdout, result.stderr, summary, keep / "report.html")


def logged(store: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    engine = create_engine(f"sqlite:///{store}")
    try:
        with engine.connect() as connection:
            return tuple(
                pd.DataFrame(connection.execute(select(table)).mappings().all())
                for table in (PREDICTIONS, FEEDBACK)
            )
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def runs(trained_lab, tmp_path_factory):
    """The service logging to a store of its own; the test part replayed with feedback and
    monitored, then a shifted sample replayed and monitored on its own."""
    home = tmp_path_factory.mktemp("monitoring")
    store = home / "predictions.db"
    settings = {
        "MODEL_URI": str(trained_lab.path / "models" / "price_category"),
        "PREDICTION_LOG_URI": f"sqlite:///{store}",
    }
    with ready_service(settings, home / "service.log") as service:
        too_few = monitor(trained_lab, settings, home / "empty")
        replayed = trained_lab.run(
            ["mlops-lab", "replay", "--url", service.url, "--feedback"],
            {"FEEDBACK_TOKEN": FEEDBACK_TOKEN},
        )
        assert replayed.returncode == 0, replayed.stderr[-3000:]
        unshifted = monitor(trained_lab, settings, home / "unshifted")
        predictions, feedback = logged(store)
        shifted_replay = trained_lab.run(
            [
                *("mlops-lab", "replay", "--url", service.url),
                *("--part", "all", "--limit", "600", *SHIFTED),
            ]
        )
        assert shifted_replay.returncode == 0, shifted_replay.stderr[-3000:]
        shifted = monitor(trained_lab, settings, home / "shifted", "--last", "600")
    return {
        "too_few": too_few,
        "unshifted": unshifted,
        "shifted": shifted,
        "predictions": predictions,
        "feedback": feedback,
    }


def test_the_unshifted_test_part_drifts_nowhere_and_exits_0(runs):
    unshifted = runs["unshifted"]
    assert unshifted.returncode == 0, unshifted.stderr[-3000:]
    summary = unshifted.summary
    assert summary["window"]["predictions"] == len(runs["predictions"]) > 1000
    # Every answer of the window was kept: the log lost none.
    assert summary["window"]["missing"] == {}
    assert "the log misses" not in unshifted.stdout
    assert summary["drift"]["drifted_fields"] == []
    assert len(summary["drift"]["fields"]) == 19
    assert not summary["predicted_categories"]["drifted"]
    assert summary["alerts"] == []
    assert "no alert" in unshifted.stdout


def test_a_shifted_sample_drifts_in_the_shifted_fields_and_exits_non_zero(runs):
    shifted = runs["shifted"]
    assert shifted.returncode == 3, shifted.stderr[-3000:]
    drifted = set(shifted.summary["drift"]["drifted_fields"])
    assert {"borough", "room_type", "latitude", "longitude"} <= drifted
    assert shifted.summary["window"]["predictions"] == 600
    assert shifted.summary["alerts"][0].startswith(f"{len(drifted)} of 19 fields drifted")
    assert "ALERT: " in shifted.stdout


def test_quality_equals_the_figures_of_the_logged_answers_and_their_feedback(runs):
    predictions, feedback = runs["predictions"], runs["feedback"]
    truth = feedback.set_index("listing_id")["price_category"]
    answers = predictions.set_index("listing_id").loc[truth.index]
    probabilities = np.array(
        [[row[name] for name in sorted(CATEGORIES)] for row in answers["probabilities"]]
    )
    expected = {
        "accuracy": accuracy_score(truth, answers["price_category"]),
        "macro_f1": f1_score(truth, answers["price_category"], average="macro"),
        "roc_auc_ovr": roc_auc_score(
            truth, probabilities, multi_class="ovr", labels=sorted(CATEGORIES)
        ),
    }
    quality = runs["unshifted"].summary["quality"]
    assert quality["with_feedback"] == len(truth)
    for name, value in expected.items():
        assert quality["window"][name] == pytest.approx(value, abs=1e-6), name
    # Against the model's own figures on the test part, which the replay sent.
    assert quality["test"]["accuracy"] == pytest.approx(quality["window"]["accuracy"], abs=1e-6)


def test_each_run_is_logged_to_mlflow_with_the_model_version(trained_lab, runs):
    client = MlflowClient(f"sqlite:///{trained_lab.path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("airbnb-price-category-monitoring")
    logged_runs = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
    assert len(logged_runs) == 2
    unshifted, shifted = logged_runs
    version = runs["unshifted"].summary["model"]["version"]
    assert unshifted.data.tags["mlops_lab.model_version"] == version
    assert (unshifted.data.tags["mlops_lab.alert"], shifted.data.tags["mlops_lab.alert"]) == (
        "false",
        "true",
    )
    assert shifted.data.metrics["drift.borough"] > 0.1
    artifacts = {item.path for item in client.list_artifacts(shifted.info.run_id, "monitoring")}
    assert artifacts == {"monitoring/report.html", "monitoring/summary.json"}


def test_too_few_predictions_is_one_line_and_exit_1(runs):
    too_few = runs["too_few"]
    assert too_few.returncode == 1
    assert "the window holds 0 predictions of" in too_few.stderr
    assert "at least 100 are needed (monitoring.minimum_window)" in too_few.stderr
    assert "Traceback" not in too_few.stderr


def test_the_report_opens_offline_in_chromium_with_its_drift_table(runs, tmp_path):
    browser = chromium(tmp_path / "profile")
    page = runs["shifted"].report.as_uri()
    assert screenshot(browser, page, tmp_path / "report.png").stat().st_size > 50_000
    body = rendered_body(browser, page)
    assert "Dataset Drift is detected" in body
    assert "Drift of the fields" in body
    for field in ("borough", "room_type", "latitude"):
        assert f">{field}<" in body
    assert "fields drifted" in body
