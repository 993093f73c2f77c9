"""`mlops-lab monitor` on the log of the service, fed by `mlops-lab replay`, on each store users
run (SQLite and PostgreSQL): the test part as it is drifts nowhere, a shifted sample drifts
where it was shifted, the quality figures are those of the logged answers, --since and --until
keep exactly the predictions between them, and the report opens in a real browser."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import chromium, rendered_body, screenshot
from services import FEEDBACK_TOKEN, ready_service
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sqlalchemy import insert, select
from stores import logged_count, logged_ids
from waiting import poll_until

from mlops_lab.serving.prediction_store import FEEDBACK, PREDICTIONS, store_engine

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


def replayed_count(stdout: str) -> int:
    """How many listings `mlops-lab replay` says it sent."""
    return int(re.search(r"replayed (\d+) listings", stdout)[1])


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def runs(trained_lab, module_prediction_store, tmp_path_factory):
    """The service logging to the store; the test part replayed with feedback and monitored,
    then a shifted sample replayed and monitored on its own. Each replay is waited for until
    the log holds at least what it sent; the tests check that it holds exactly that."""
    home = tmp_path_factory.mktemp(f"monitoring-{module_prediction_store['kind']}")
    uri = module_prediction_store["uri"]
    settings = {
        "MODEL_URI": str(trained_lab.path / "models" / "price_category"),
        "PREDICTION_LOG_URI": uri,
    }
    started_ms = now_ms()
    with ready_service(settings, home / "service.log") as service:
        too_few = monitor(trained_lab, settings, home / "empty")
        replayed = trained_lab.run(
            ["mlops-lab", "replay", "--url", service.url, "--feedback"],
            {"FEEDBACK_TOKEN": FEEDBACK_TOKEN},
        )
        assert replayed.returncode == 0, replayed.stderr[-3000:]
        sent = replayed_count(replayed.stdout)
        poll_until(lambda: logged_count(uri) >= sent, 30, f"the {sent} replayed answers logged")
        unshifted = monitor(trained_lab, settings, home / "unshifted")
        predictions = pd.read_sql(select(PREDICTIONS), uri)
        feedback = pd.read_sql(select(FEEDBACK), uri)
        shifted_replay = trained_lab.run(
            [
                *("mlops-lab", "replay", "--url", service.url),
                *("--part", "all", "--limit", "600", *SHIFTED),
            ]
        )
        assert shifted_replay.returncode == 0, shifted_replay.stderr[-3000:]
        shifted_sent = replayed_count(shifted_replay.stdout)
        poll_until(
            lambda: logged_count(uri) >= sent + shifted_sent,
            30,
            f"the {shifted_sent} shifted answers logged",
        )
        shifted = monitor(trained_lab, settings, home / "shifted", "--last", "600")
        shifted_logged = logged_count(uri) - len(predictions)
    return {
        "uri": uri,
        "settings": settings,
        "sent": sent,
        "feedback_sent": int(re.search(r"(\d+) true prices posted", replayed.stdout)[1]),
        "shifted_sent": shifted_sent,
        "shifted_logged": shifted_logged,
        "too_few": too_few,
        "unshifted": unshifted,
        "shifted": shifted,
        "predictions": predictions,
        "feedback": feedback,
        "monitored_ms": (started_ms, now_ms()),
    }


def test_each_replayed_listing_is_logged_once_with_its_feedback(runs):
    predictions, feedback = runs["predictions"], runs["feedback"]
    ids = list(predictions["listing_id"])
    assert len(ids) == len(set(ids)) == runs["sent"] > 1000
    assert len(feedback) == feedback["listing_id"].nunique() == runs["feedback_sent"]
    assert set(feedback["listing_id"]) == set(ids)
    # The shifted replay's answers, once each (its sample may repeat the test part's ids).
    assert runs["shifted_logged"] == runs["shifted_sent"] == 600


def test_the_unshifted_test_part_drifts_nowhere_and_exits_0(runs):
    unshifted = runs["unshifted"]
    assert unshifted.returncode == 0, unshifted.stderr[-3000:]
    summary = unshifted.summary
    assert summary["window"]["predictions"] == len(runs["predictions"]) == runs["sent"]
    # Every answer of the window was kept: the log lost none.
    assert summary["window"]["missing"] == {}
    assert "the log misses" not in unshifted.stdout
    assert summary["drift"]["drifted_fields"] == []
    assert len(summary["drift"]["fields"]) == 19
    assert not summary["predicted_categories"]["drifted"]
    assert summary["alerts"] == []
    assert "no alert" in unshifted.stdout


def test_a_shifted_sample_drifts_in_the_shifted_fields_and_exits_3(runs):
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
    client = trained_lab.embedded_client()
    experiment = client.get_experiment_by_name("airbnb-price-category-monitoring")
    # The lab's runs of this store's monitoring: other stores' and tests' are the lab's too.
    first, last = runs["monitored_ms"]
    logged_runs = [
        run
        for run in client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
        if first <= run.info.start_time <= last
    ]
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


# A day long before the service's own answers, in three blocks of the served model's answers:
# before --since, between --since and --until, and from --until on. Each block's first answer
# is at its start, its last a microsecond before the next block's.
SINCE = datetime(2021, 3, 4, 10, 0, tzinfo=UTC)
UNTIL = datetime(2021, 3, 4, 11, 0, tzinfo=UTC)
BLOCKS = {
    "before": (SINCE - timedelta(hours=1), SINCE, 120),
    "inside": (SINCE, UNTIL, 150),
    "after": (UNTIL, UNTIL + timedelta(hours=1), 130),
}


def test_since_and_until_keep_exactly_the_predictions_between_them(trained_lab, runs, tmp_path):
    uri, answers = runs["uri"], runs["predictions"].to_dict("records")
    rows = []
    for block, (start, end, count) in BLOCKS.items():
        moments = [start + (end - start) * number / count for number in range(count - 1)]
        for number, moment in enumerate([*moments, end - timedelta(microseconds=1)]):
            assert start <= moment < end
            answer = answers[len(rows)]
            rows.append(
                {
                    "request_id": f"window-{block}",
                    "predicted_at": moment,
                    "model_name": answer["model_name"],
                    "model_version": answer["model_version"],
                    "listing_id": f"window-{block}-{number}",
                    "listing": answer["listing"],
                    "price_category": answer["price_category"],
                    "probabilities": answer["probabilities"],
                    "latency_ms": 1.0,
                }
            )
    engine = store_engine(uri)
    try:
        with engine.begin() as connection:
            # Latest first: the window goes by the times, not by the order rows were written.
            connection.execute(insert(PREDICTIONS), rows[::-1])
    finally:
        engine.dispose()
    written = logged_ids(uri, "window-")
    assert len(written) == len(set(written)) == 400

    # The same moments in other zones, UTC-1 and UTC+1: read as UTC, they would take in all.
    window = monitor(
        trained_lab,
        runs["settings"],
        tmp_path / "window",
        *("--since", "2021-03-04T09:00:00-01:00", "--until", "2021-03-04T12:00+01:00"),
    )
    assert window.returncode in (0, 3), window.stderr[-3000:]
    summary = window.summary["window"]
    assert summary["predictions"] == 150
    assert (summary["since"], summary["until"]) == (SINCE.isoformat(), UNTIL.isoformat())
    assert (summary["first"], summary["last"]) == (
        "2021-03-04T10:00:00+00:00",
        "2021-03-04T10:59:59+00:00",
    )
    assert "150 predictions from 2021-03-04T10:00:00+00:00 to" in window.stdout


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
