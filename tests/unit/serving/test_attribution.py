import numpy as np
import pytest
from small_models import SMALL_ROUTER

from mlops_lab.evaluation.scores import required_view
from mlops_lab.kernel.decision import ordered_probabilities
from mlops_lab.kernel.features import conform_listings
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS, OPTIONAL_FIELDS
from mlops_lab.kernel.modelling import build_model
from mlops_lab.serving.attribution import (
    explain_listings,
    field_codes,
    permutation_shap,
    top_contributions,
)
from mlops_lab.serving.compiled import compile_model

CATEGORIES = ["low", "mid", "high", "lux"]


@pytest.fixture(scope="module")
def answer(listing_sample):
    router = build_model("field_router", (), SMALL_ROUTER).fit(
        listing_sample, listing_sample["price_category"]
    )
    compiled = compile_model(router)
    classes = list(compiled.classes)
    return lambda listings: ordered_probabilities(
        compiled.answer_columns(listings)[0], classes, CATEGORIES
    )


@pytest.fixture(scope="module")
def listings(listing_sample):
    return conform_listings(listing_sample.head(6))


@pytest.fixture(scope="module")
def background(listing_sample):
    return conform_listings(listing_sample.tail(8))


def test_field_codes_take_a_categorical_whole_and_give_it_back(listings, background):
    codes = field_codes(listings, background)
    matrix = codes.encode(listings, MODEL_INPUT_FIELDS)
    # One column per listing field: a categorical is one column, so SHAP masks it whole.
    assert matrix.shape == (6, len(MODEL_INPUT_FIELDS))
    decoded = codes.decode(matrix, MODEL_INPUT_FIELDS)
    for name in MODEL_INPUT_FIELDS:
        assert decoded[name].tolist() == listings[name].tolist()
    # A masked coalition always holds one real room type, never two or none.
    swapped = matrix.copy()
    column = MODEL_INPUT_FIELDS.index("room_type")
    swapped[:, column] = codes.encode(background, MODEL_INPUT_FIELDS)[:6, column]
    assert set(codes.decode(swapped, MODEL_INPUT_FIELDS)["room_type"]) <= set(
        background["room_type"]
    )


def test_one_value_per_listing_field_adding_up_to_the_answer(answer, listings, background):
    explanation = explain_listings(answer, listings, background, CATEGORIES, 1, seed=0)
    assert explanation.feature_names == list(MODEL_INPUT_FIELDS)
    assert explanation.values.shape == (6, len(MODEL_INPUT_FIELDS), 4)
    assert explanation.output_names == CATEGORIES
    # Permutation SHAP is exact in total: base value plus contributions is the answer.
    total = explanation.base_values + explanation.values.sum(axis=1)
    assert np.allclose(total, answer(listings))


def test_fields_a_listing_does_not_carry_get_nothing_and_stay_absent(
    answer, listing_sample, background
):
    callers = conform_listings(required_view(listing_sample.head(4)))
    explanation = explain_listings(answer, callers, background, CATEGORIES, 1, seed=0)
    absent = [MODEL_INPUT_FIELDS.index(name) for name in OPTIONAL_FIELDS]
    assert (explanation.values[:, absent, :] == 0).all()
    # Explained as the model answers such a listing: from the required-fields member.
    total = explanation.base_values + explanation.values.sum(axis=1)
    assert np.allclose(total, answer(callers))


def test_top_contributions_name_fields_with_the_values_sent(answer, listings, background):
    explanation = explain_listings(answer, listings, background, CATEGORIES, 1, seed=0)
    top = top_contributions(explanation, listings, 0, "high", 5)
    assert len(top) == 5
    sizes = [abs(item["contribution"]) for item in top]
    assert sizes == sorted(sizes, reverse=True)
    for item in top:
        assert item["field"] in MODEL_INPUT_FIELDS
        sent = listings[item["field"]][0]
        assert item["value"] == (sent if isinstance(sent, str) else float(sent))


def test_permutation_shap_is_exact_for_additive_and_two_field_answers():
    rng = np.random.default_rng(0)
    explained = rng.normal(size=(5, 3))
    background = rng.normal(size=(4, 3))
    weights = np.array([1.0, -2.0, 0.5])

    def additive(matrix):
        return (matrix @ weights)[:, None]

    values, base = permutation_shap(additive, explained, background, 1, rng)
    assert np.allclose(values[:, :, 0], weights * (explained - background.mean(axis=0)))
    assert np.allclose(base[:, 0], additive(background).mean())

    # Two fields: one order and its reverse are every order, so the values are exact Shapley.
    def product(matrix):
        return (matrix[:, 0] * matrix[:, 1])[:, None]

    values, _ = permutation_shap(product, explained[:, :2], background[:, :2], 1, rng)
    x0, x1 = explained[:, 0], explained[:, 1]
    b0, b1 = background[:, 0], background[:, 1]
    alone = {0: x0 * b1.mean() - (b0 * b1).mean(), 1: b0.mean() * x1 - (b0 * b1).mean()}
    last = {0: x0 * x1 - b0.mean() * x1, 1: x0 * x1 - x0 * b1.mean()}
    for field in (0, 1):
        assert np.allclose(values[:, field, 0], (alone[field] + last[field]) / 2)
