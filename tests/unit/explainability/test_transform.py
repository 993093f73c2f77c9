import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mlops_lab.explainability.transform import (
    beeswarm_figure,
    confusion_figure,
    expected_calibration_error,
    mean_abs_shap,
    mean_abs_shap_figure,
    normalized_confusion,
    per_class_figure,
    reliability_figure,
    reliability_table,
    shap_explanation,
)
from mlops_lab.features import build_model

CATEGORIES = ["low", "mid", "high", "lux"]


@pytest.fixture(scope="module")
def explanation(listing_sample):
    model = build_model(
        "hist_gradient_boosting",
        ("room_type", "accommodates", "bedrooms", "distance_to_midtown_km"),
        {"max_iter": 20, "random_state": 0},
    )
    model.fit(listing_sample, listing_sample["price_category"])
    return shap_explanation(
        model, listing_sample.head(20), listing_sample.tail(10), permutations=1, seed=0
    )


def test_shap_explanation_has_a_value_per_listing_feature_and_class(explanation):
    assert explanation.values.shape[0] == 20
    assert explanation.values.shape[2] == 4
    assert "accommodates" in explanation.feature_names
    assert sorted(explanation.output_names) == sorted(CATEGORIES)


def test_mean_abs_shap_is_sorted_by_total_and_in_category_order(explanation):
    table = mean_abs_shap(explanation, CATEGORIES)
    assert list(table.columns) == CATEGORIES
    totals = table.sum(axis=1)
    assert totals.is_monotonic_decreasing
    assert (table.to_numpy() >= 0).all()


def test_normalized_confusion_rows_sum_to_one():
    truth = pd.Series(["low", "low", "mid", "lux"])
    predicted = np.array(["low", "mid", "mid", "lux"])
    matrix = normalized_confusion(truth, predicted, CATEGORIES)
    assert matrix.loc["low", "low"] == 0.5
    assert matrix.loc["low", "mid"] == 0.5
    assert matrix.loc["high"].sum() == 0.0
    assert matrix.loc["lux", "lux"] == 1.0


def test_figures_are_drawn(explanation):
    table = mean_abs_shap(explanation, CATEGORIES)
    per_class = {name: {"precision": 0.5, "recall": 0.4, "support": 10.0} for name in CATEGORIES}
    matrix = pd.DataFrame(np.eye(4), index=CATEGORIES, columns=CATEGORIES)
    for figure in (
        mean_abs_shap_figure(table, top=3),
        beeswarm_figure(explanation, CATEGORIES, top=3),
        confusion_figure(matrix),
        per_class_figure(per_class),
    ):
        assert isinstance(figure, Figure)
        assert figure.axes


def test_reliability_of_perfectly_calibrated_probabilities_has_no_gap():
    # Of the listings given lux 0.25, one in four is lux; of those given 0.75, three in four.
    truth = pd.Series(["lux", "low", "low", "low", "lux", "lux", "lux", "low"])
    lux = np.array([0.25] * 4 + [0.75] * 4)
    probabilities = np.column_stack([1 - lux, lux])
    table = reliability_table(truth, probabilities, ["low", "lux"], bins=2)
    assert table["listings"].sum() == 2 * len(truth)
    lux_rows = table[table["category"] == "lux"]
    assert lux_rows["mean_predicted"].tolist() == pytest.approx(lux_rows["observed"].tolist())
    assert expected_calibration_error(table) == pytest.approx({"low": 0.0, "lux": 0.0})
    assert isinstance(reliability_figure(table, expected_calibration_error(table)), Figure)


def test_calibration_error_weighs_each_bin_by_its_listings():
    table = pd.DataFrame(
        {
            "category": ["lux", "lux"],
            "mean_predicted": [0.1, 0.9],
            "observed": [0.1, 0.5],
            "listings": [3, 1],
        }
    )
    assert expected_calibration_error(table) == pytest.approx({"lux": 0.1})
