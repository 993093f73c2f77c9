"""The API's schema takes only what the prediction store can keep, on PostgreSQL and SQLite."""

import json

import pytest
from pydantic import ValidationError

from mlops_lab.kernel.contract import ID_MAX_LENGTH
from mlops_lab.serving.prediction_store import ID_LENGTH
from mlops_lab.serving.schema import Feedback


def problems(record: dict) -> list[tuple[tuple, str]]:
    try:
        Feedback.model_validate(record)
    except ValidationError as error:
        return [(problem["loc"], problem["msg"]) for problem in error.errors()]
    return []


def test_the_api_and_the_store_bound_ids_alike():
    assert ID_MAX_LENGTH == ID_LENGTH


@pytest.mark.parametrize(
    "listing_id",
    [int("9" * ID_MAX_LENGTH), -int("9" * (ID_MAX_LENGTH - 1)), "x" * ID_MAX_LENGTH, "é", 0],
)
def test_an_id_whose_text_fits_the_store_is_taken(listing_id):
    assert problems({"id": listing_id, "price": 100}) == []


@pytest.mark.parametrize(
    "listing_id, message",
    [
        (10**ID_MAX_LENGTH, "at most 100 characters as text"),
        (-int("9" * ID_MAX_LENGTH), "at most 100 characters as text"),
        pytest.param(10**5000, "at most 100 characters as text", id="5,000 digits"),
        ("x" * (ID_MAX_LENGTH + 1), "at most 100 characters"),
        ("a\x00b", "NUL"),
        (json.loads('"\\ud800x"'), "lone surrogate"),
    ],
)
def test_an_id_the_store_cannot_keep_is_one_problem_naming_the_id(listing_id, message):
    [(where, problem)] = problems({"id": listing_id, "price": 100})
    assert where == ("id",) and message in problem


@pytest.mark.parametrize("text", ["a\x00b", json.loads('"\\udfffx"')])
def test_a_category_the_store_cannot_keep_is_refused(text):
    [(where, problem)] = problems({"id": 1, "price_category": text})
    assert where == ("price_category",) and ("NUL" in problem or "Unicode" in problem), problem
