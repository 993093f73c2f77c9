import pandas as pd
import pytest

from mlops_lab.commands.replay.transform import (
    Condition,
    ReplayError,
    batches,
    feedback_records,
    parse_conditions,
    sampled,
    shifted,
)

LISTINGS = pd.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "borough": ["Manhattan", "Brooklyn", "Manhattan", "Queens"],
        "room_type": ["Entire home/apt", "Private room", "Private room", "Entire home/apt"],
        "accommodates": [2, 4, 2, 6],
        "price": [100.0, 60.0, 80.0, 250.0],
    }
)


def test_conditions_read_field_equals_value_and_the_challenges_borough_name():
    assert parse_conditions(("neighbourhood=Manhattan", "room_type = Private room")) == [
        Condition("borough", "Manhattan"),
        Condition("room_type", "Private room"),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("borough", "write FIELD=VALUE"),
        ("=Manhattan", "write FIELD=VALUE"),
        ("colour=red", "not a listing field"),
    ],
)
def test_a_malformed_condition_says_how_to_write_one(text, problem):
    with pytest.raises(ReplayError, match=problem):
        parse_conditions((text,))


def test_a_shift_keeps_the_listings_that_meet_every_condition():
    kept = shifted(LISTINGS, parse_conditions(("borough=Manhattan", "accommodates=2")))
    assert kept["id"].tolist() == [1, 3]


def test_a_shift_that_keeps_nothing_or_compares_a_number_with_text_is_refused():
    with pytest.raises(ReplayError, match="no listing has borough=Bronx"):
        shifted(LISTINGS, parse_conditions(("borough=Bronx",)))
    with pytest.raises(ReplayError, match="accommodates is a number: 'two' is not"):
        shifted(LISTINGS, parse_conditions(("accommodates=two",)))


def test_a_limit_takes_a_seeded_sample_and_no_limit_takes_all():
    assert sampled(LISTINGS, 2, seed=1).equals(sampled(LISTINGS, 2, seed=1))
    assert len(sampled(LISTINGS, 2, seed=1)) == 2
    assert sampled(LISTINGS, None, seed=1) is LISTINGS


def test_batches_and_feedback_records():
    assert batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert feedback_records(LISTINGS.head(2)) == [
        {"id": 1, "price": 100.0},
        {"id": 2, "price": 60.0},
    ]


def test_a_price_factor_moves_every_true_price_to_the_cent():
    assert feedback_records(LISTINGS.head(2), price_factor=1.333) == [
        {"id": 1, "price": 133.3},
        {"id": 2, "price": 79.98},
    ]
