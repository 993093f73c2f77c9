import math

import pytest

from mlops_lab.commands.harvest.transform import labelled_listings
from mlops_lab.kernel.contract import Listing

EDGES, CATEGORIES = [10, 90, 180, 400], ["low", "mid", "high", "lux"]


@pytest.fixture()
def model_input(challenge_payload) -> dict:
    """The challenge's listing as the service logs it: the fields the model took."""
    return Listing.model_validate({**challenge_payload, "id": None}).model_input()


def labelled(listing_id, listing, price=None, category=None, truths=1) -> dict:
    return {
        "id": listing_id,
        "listing": listing,
        "price": price,
        "price_category": category,
        "truths_sent": truths,
    }


def test_each_listing_with_a_truth_becomes_one_labelled_listing(model_input):
    rows = [
        labelled("2595", model_input, price=150.0),
        labelled("77", model_input, category="lux", truths=3),
    ]
    table, dropped = labelled_listings(rows, EDGES, CATEGORIES)
    assert list(table["id"]) == [77, 2595]
    assert list(table["price_category"]) == ["lux", "mid"]
    assert math.isnan(table["price"].iloc[0]) and table["price"].iloc[1] == 150.0
    assert table.loc[0, "borough"] == "Brooklyn" and table.loc[0, "accommodates"] == 4
    # The latest of three truths counts; the two it replaced are counted, not kept.
    assert dropped == {"truth_replaced": 2}


def test_what_cannot_be_a_training_listing_is_dropped_and_counted(model_input):
    refused = {**model_input, "accommodates": 0}
    rows = [
        labelled("1", model_input, price=5.0),
        labelled("2", model_input, price=100.0),
        labelled("3", refused, price=100.0),
        labelled("caller-ref-4", model_input, price=100.0),
        labelled("5", None, price=100.0),
        labelled("6", model_input, category="palatial"),
    ]
    table, dropped = labelled_listings(rows, EDGES, CATEGORIES)
    assert list(table["id"]) == [2]
    assert dropped == {
        "category_unknown": 1,
        "id_not_a_listing_number": 1,
        "prediction_not_logged": 1,
        "price_impossible": 1,
        "refused_by_the_api": 1,
    }


def test_no_feedback_gives_an_empty_table_with_the_columns(model_input):
    table, dropped = labelled_listings([], EDGES, CATEGORIES)
    assert table.empty and "price_category" in table and dropped == {}
