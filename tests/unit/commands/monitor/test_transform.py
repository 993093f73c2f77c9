from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_lab.commands.monitor.transform import (
    PREDICTED,
    Drift,
    Findings,
    MonitorError,
    alerts,
    answers_table,
    as_sent,
    carries_optional,
    drift_report,
    drifts_found,
    fields_to_test,
    parse_moment,
    prediction_drift_report,
    quality,
    quality_report,
    report_html,
    sent_like,
    summary_document,
    window_of,
)
from mlops_lab.config import DriftConfig
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS, OPTIONAL_FIELDS, REQUIRED_FIELDS

CATEGORIES = ["low", "mid", "high", "lux"]
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
DRIFT = DriftConfig(
    numeric_method="wasserstein",
    numeric_threshold=0.1,
    categorical_method="jensenshannon",
    categorical_threshold=0.1,
    minimum_values=100,
    alert_share=0.2,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("6h", NOW - timedelta(hours=6)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T08:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T09:00+01:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
    ],
)
def test_a_moment_is_a_span_back_from_now_or_an_iso_time_in_utc(text, expected):
    assert parse_moment(text, NOW) == expected


def test_a_moment_that_is_neither_says_what_is_taken():
    with pytest.raises(MonitorError, match="'yesterday' is no time: give a span"):
        parse_moment("yesterday", NOW)


def logged(listing: dict, category: str = "mid", seconds: int = 0) -> dict:
    return {
        "predicted_at": datetime(2026, 12, 5, 12, 0, seconds),
        "listing_id": str(seconds),
        "listing": listing,
        "price_category": category,
        "probabilities": {"lux": 0.1, "low": 0.2, "mid": 0.6, "high": 0.1},
    }


def test_the_window_holds_the_fields_as_sent_and_the_answers_in_category_order():
    required = {"borough": "Bronx", "room_type": "Private room", "accommodates": 2, "tv": 1}
    window = window_of(
        [logged(required), logged({**required, "amenity_count": 7}, "lux", 1)], CATEGORIES
    )
    assert list(window.listings.columns) == list(MODEL_INPUT_FIELDS)
    assert window.listings["amenity_count"].isna().tolist() == [True, False]
    assert window.listings["accommodates"].dtype == float
    assert window.predicted.tolist() == ["mid", "lux"]
    np.testing.assert_array_equal(window.probabilities[0], [0.2, 0.6, 0.1, 0.1])
    # The log's times carry no zone in SQLite: they are UTC.
    assert window.predicted_at[1] == datetime(2026, 12, 5, 12, 0, 1, tzinfo=UTC)
    assert window.listing_ids == ["0", "1"]


def test_listings_sent_with_the_required_fields_only_lose_every_optional_one(prepared_listings):
    listings = prepared_listings[list(MODEL_INPUT_FIELDS)].head(200)
    keep = np.arange(200) % 2 == 0
    sent = as_sent(listings, keep)
    assert sent.loc[~keep, list(OPTIONAL_FIELDS)].isna().all().all()
    pd.testing.assert_frame_equal(sent[keep], listings[keep])
    pd.testing.assert_frame_equal(sent[list(REQUIRED_FIELDS)], listings[list(REQUIRED_FIELDS)])
    assert not carries_optional(sent)[~keep].any()


def test_the_reference_carries_optional_fields_in_the_windows_share_seeded(prepared_listings):
    listings = prepared_listings[list(MODEL_INPUT_FIELDS)]
    sent = sent_like(listings, 0.3, seed=0)
    assert carries_optional(sent).mean() == pytest.approx(0.3, abs=0.02)
    pd.testing.assert_frame_equal(sent, sent_like(listings, 0.3, seed=0))
    assert not carries_optional(sent_like(listings, 0.0, seed=0)).any()
    # Callers who always add what they have send the listings as they are.
    pd.testing.assert_frame_equal(sent_like(listings, 1.0, seed=0), listings)


def test_fields_sent_too_rarely_are_not_tested_and_say_how_often_they_came():
    listings = pd.DataFrame({field: [1.0] * 150 for field in MODEL_INPUT_FIELDS})
    listings.loc[50:, "amenity_count"] = np.nan
    tested, untested = fields_to_test(listings, minimum_values=100)
    assert "amenity_count" not in tested and len(tested) == len(MODEL_INPUT_FIELDS) - 1
    assert untested == {"amenity_count": 50}


@pytest.fixture(scope="module")
def reference(prepared_listings) -> pd.DataFrame:
    table = prepared_listings[list(MODEL_INPUT_FIELDS)].copy()
    table[PREDICTED] = prepared_listings["price_category"].to_numpy()
    return table


def test_a_sample_of_the_reference_drifts_nowhere(reference):
    current = reference.sample(2000, random_state=3)
    found = drifts_found(drift_report(reference, current, list(MODEL_INPUT_FIELDS), DRIFT).dict())
    assert set(found) == set(MODEL_INPUT_FIELDS)
    assert [name for name, drift in found.items() if drift.drifted] == []
    assert found["borough"] == Drift(
        "borough", "jensenshannon", found["borough"].score, 0.1, drifted=False
    )
    assert found["latitude"].method == "wasserstein"


def test_one_borough_only_drifts_in_where_listings_are(reference):
    current = reference[reference["borough"] == "Manhattan"].sample(2000, random_state=3)
    found = drifts_found(drift_report(reference, current, list(MODEL_INPUT_FIELDS), DRIFT).dict())
    drifted = {name for name, drift in found.items() if drift.drifted}
    assert {"borough", "latitude", "longitude"} <= drifted
    assert "room_type" not in drifted
    assert found["borough"].score > found["room_type"].score


def test_answers_drift_when_their_categories_move(reference):
    answers = reference[PREDICTED].to_numpy()
    same = drifts_found(prediction_drift_report(answers, answers[::7], DRIFT).dict())[PREDICTED]
    assert not same.drifted and same.score < 0.05
    pricier = np.where(answers == "low", "high", answers)[::7]
    moved = drifts_found(prediction_drift_report(answers, pricier, DRIFT).dict())[PREDICTED]
    assert moved.drifted and moved.method == "jensenshannon" and moved.threshold == 0.1


def test_quality_is_sklearns_on_the_answers_given():
    truth = np.array(["low", "mid", "high", "lux", "mid", "low"])
    predicted = np.array(["low", "mid", "mid", "lux", "mid", "high"])
    probabilities = np.array(
        [
            [0.7, 0.2, 0.05, 0.05],
            [0.1, 0.8, 0.05, 0.05],
            [0.1, 0.5, 0.3, 0.1],
            [0.0, 0.1, 0.2, 0.7],
            [0.2, 0.6, 0.1, 0.1],
            [0.3, 0.1, 0.5, 0.1],
        ]
    )
    scores = quality(truth, predicted, probabilities, CATEGORIES)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert 0.5 < scores["roc_auc_ovr"] <= 1
    assert set(scores) == {"accuracy", "macro_f1", "roc_auc_ovr", "log_loss"}


def test_quality_with_one_true_category_has_no_roc_auc_and_with_two_a_binary_one():
    probabilities = np.tile([0.1, 0.6, 0.2, 0.1], (4, 1))
    probabilities[1] = [0.1, 0.2, 0.6, 0.1]
    one = quality(np.array(["mid"] * 4), np.array(["mid"] * 4), probabilities, CATEGORIES)
    assert one["roc_auc_ovr"] is None and one["accuracy"] == 1.0
    two = np.array(["mid", "high", "mid", "mid"])
    assert quality(two, two, probabilities, CATEGORIES)["roc_auc_ovr"] == 1.0


def findings(drifted: list[str], predictions_drifted: bool = False, auc: float = 0.88):
    fields = {
        name: Drift(name, "jensenshannon", 0.5 if name in drifted else 0.01, 0.1, name in drifted)
        for name in ("borough", "room_type", "latitude", "longitude", "tv")
    }
    return Findings(
        fields=fields,
        untested={"amenity_count": 3},
        predictions=Drift(PREDICTED, "jensenshannon", 0.3, 0.1, predictions_drifted),
        window_quality={"accuracy": 0.7, "macro_f1": 0.6, "roc_auc_ovr": auc, "log_loss": 0.7},
        test_quality={"accuracy": 0.7, "macro_f1": 0.65, "roc_auc_ovr": 0.88, "log_loss": 0.7},
        with_feedback=400,
    )


def test_no_alert_when_nothing_moved():
    assert alerts(findings([]), alert_share=0.2, maximum_roc_auc_drop=0.05) == []


def test_an_alert_per_reason_to_retrain():
    found = alerts(
        findings(["borough", "latitude"], predictions_drifted=True, auc=0.8),
        alert_share=0.2,
        maximum_roc_auc_drop=0.05,
    )
    assert found[0] == "2 of 5 fields drifted (40%, the alert is at 20%): borough, latitude"
    assert found[1].startswith("the predicted categories drifted (jensenshannon 0.300 ≥ 0.1)")
    assert found[2].startswith("ROC AUC fell to 0.8000 on 400 predictions with feedback")
    assert len(found) == 3


def test_fewer_drifted_fields_than_the_share_raise_no_alert():
    assert alerts(findings(["borough"]), alert_share=0.25, maximum_roc_auc_drop=0.05) == []


def test_the_report_is_one_self_contained_page_with_the_verdict_on_top(reference):
    current = reference.sample(500, random_state=1)
    drift = drift_report(reference, current, ["borough", "accommodates"], DRIFT)
    truth = current[PREDICTED].to_numpy()
    probabilities = np.full((len(current), 4), 0.25)
    answers = answers_table(truth, truth, probabilities, CATEGORIES)
    summary = summary_document(
        findings(["borough"]),
        ["1 of 5 fields drifted"],
        {"name": "price", "version": "3", "uri": "models:/price@champion"},
        {"predictions": 500, "first": "2026-12-05T10:00", "last": "2026-12-05T11:00"},
        {"description": "the training part, 24336 listings"},
        alert_share=0.2,
    )
    page = report_html(
        summary,
        [
            ("Drift of the fields", drift),
            ("Quality of the answers", quality_report(answers, answers, CATEGORIES)),
        ],
    )
    assert "price v3: 1 of 5 fields drifted" in page
    assert "Drift of the fields" in page and "Quality of the answers" in page
    # Evidently's page carries its scripts: it opens with no network.
    assert "<script src=" not in page
    assert summary["drift"]["drifted_fields"] == ["borough"]
    assert summary["drift"]["not_tested"] == {"amenity_count": 3}
