import math

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from projects import challenge_payload

from mlops_lab.kernel.contract import answer_column_names
from mlops_lab.kernel.pyfunc import checked_listings

# The README's payload as callers send it: counts as integers.
CHALLENGE = challenge_payload()


def test_integers_and_floats_both_pass_and_a_gap_is_an_absent_field():
    frame = pd.DataFrame([CHALLENGE, {**CHALLENGE, "accommodates": 4.0, "wifi": 1}])
    listings = checked_listings(frame)
    assert listings["accommodates"].tolist() == [4, 4]
    assert listings["borough"].tolist() == ["Brooklyn", "Brooklyn"]
    # The first listing sent no wifi: absent, as the API leaves it, not a value.
    assert math.isnan(listings["wifi"].iloc[0]) and listings["wifi"].iloc[1] == 1
    assert "id" not in listings.columns


def test_each_listing_outside_the_contract_is_named_by_row_and_field():
    broken = {**CHALLENGE, "bathrooms": 1.25, "neighbourhood": "Hoboken"}
    del broken["room_type"]
    with pytest.raises(MlflowException) as raised:
        checked_listings(pd.DataFrame([CHALLENGE, broken]))
    message = str(raised.value)
    assert "[1].room_type: Field required" in message
    assert "[1].bathrooms: Input should be a multiple of 0.5" in message
    assert "[1].neighbourhood" in message and "[0]" not in message


def test_the_answer_columns_are_the_category_then_each_probability_in_order():
    assert answer_column_names(["low", "mid", "high", "lux"]) == [
        "price_category",
        "probability_low",
        "probability_mid",
        "probability_high",
        "probability_lux",
    ]
