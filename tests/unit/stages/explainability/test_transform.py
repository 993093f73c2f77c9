import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS, OPTIONAL_FIELDS, REQUIRED_FIELDS
from mlops_lab.serving.attribution import Attributions
from mlops_lab.stages.explainability.transform import (
    beeswarm_figure,
    confusion_figure,
    expected_calibration_error,
    mean_abs_shap,
    mean_abs_shap_figure,
    normalized_confusion,
    per_class_figure,
    reliability_figure,
    reliability_table,
)

CATEGORIES = ["low", "mid", "high", "lux"]
FIELDS = len(MODEL_INPUT_FIELDS)


def made_up_explanation(absent: tuple[str, ...] = ()) -> Attributions:
    """SHAP values of 20 listings: random, but zero (and the data missing) for absent fields."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(20, FIELDS, 4))
    data = rng.normal(size=(20, FIELDS))
    for name in absent:
        values[:, MODEL_INPUT_FIELDS.index(name)] = 0
        data[:, MODEL_INPUT_FIELDS.index(name)] = np.nan
    return Attributions(
        values=values,
        base_values=np.full((20, 4), 0.25),
        data=data,
        feature_names=list(MODEL_INPUT_FIELDS),
        output_names=["high", "low", "lux", "mid"],
    )


@pytest.fixture(scope="module")
def explanation() -> Attributions:
    return made_up_explanation()


def test_mean_abs_shap_has_a_row_per_listing_field_sorted_by_total(explanation):
    table = mean_abs_shap(explanation, CATEGORIES)
    assert list(table.columns) == CATEGORIES
    assert sorted(table.index) == sorted(MODEL_INPUT_FIELDS)
    assert table.sum(axis=1).is_monotonic_decreasing
    assert (table.to_numpy() >= 0).all()


def test_mean_abs_shap_leaves_out_fields_no_listing_carried():
    table = mean_abs_shap(made_up_explanation(OPTIONAL_FIELDS), CATEGORIES)
    assert set(table.index) == set(REQUIRED_FIELDS)


def test_normalized_confusion_rows_sum_to_one():
    truth = pd.Series(["low", "low", "mid", "lux"])
    predicted = np.array(["low", "mid", "mid", "lux"])
    matrix = normalized_confusion(truth, predicted, CATEGORIES)
    assert matrix.loc["low", "low"] == 0.5
    assert matrix.loc["low", "mid"] == 0.5
    assert matrix.loc["high"].sum() == 0.0
    assert matrix.loc["lux", "lux"] == 1.0


def test_figures_show_both_views(explanation):
    tables = {
        "full": mean_abs_shap(explanation, CATEGORIES),
        "required": mean_abs_shap(made_up_explanation(OPTIONAL_FIELDS), CATEGORIES),
    }
    scores = {name: {"precision": 0.5, "recall": 0.4, "support": 10.0} for name in CATEGORIES}
    matrix = pd.DataFrame(np.eye(4), index=CATEGORIES, columns=CATEGORIES)
    for figure in (
        mean_abs_shap_figure(tables),
        confusion_figure({"full": matrix, "required": matrix}),
        per_class_figure({"full": scores, "required": scores}),
    ):
        assert isinstance(figure, Figure)
        titles = [axes.get_title() for axes in figure.axes if axes.get_title()]
        assert any("every field" in title for title in titles)
        assert any("only the required fields" in title for title in titles)


def test_the_beeswarm_has_one_row_per_listing_field(explanation):
    figure = beeswarm_figure(explanation, CATEGORIES)
    first = figure.axes[0]
    labels = [label.get_text() for label in first.get_yticklabels()]
    assert sorted(labels) == sorted(MODEL_INPUT_FIELDS)


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
    errors = expected_calibration_error(table)
    figure = reliability_figure({"full": table}, {"full": errors})
    assert isinstance(figure, Figure)


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
