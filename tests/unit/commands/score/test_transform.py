from pathlib import Path

import pandas as pd
import pytest
from raw_listings import raw_listing

from mlops_lab.commands.score.transform import (
    ScoringInputError,
    api_fields_of_scrape,
    columns_the_api_ignores,
    contract_problems,
    file_kind,
    is_inside_airbnb,
    numbers_where_readable,
    rejected_path,
    row_locations,
    scored_frame,
    validate_rows,
)
from mlops_lab.serving.payloads import payloads

CATEGORIES = ["low", "mid", "high", "lux"]


def test_an_inside_airbnb_file_is_told_from_the_apis_fields(challenge_payload):
    assert is_inside_airbnb(list(raw_listing()))
    assert not is_inside_airbnb(list(challenge_payload))


def test_a_scraped_row_becomes_a_listing_the_api_takes():
    fields = api_fields_of_scrape(pd.DataFrame([raw_listing(id="2595")]))
    (row,) = payloads(fields)
    assert "price" not in row
    assert row["id"] == "2595"
    valid, positions, rejected = validate_rows([row], ["line 2"])
    assert positions == [0] and rejected == []
    assert valid[0].model_input()["borough"] == "Brooklyn"
    assert valid[0].model_input()["tv"] == 1 and valid[0].model_input()["amenity_count"] == 2


def test_a_bad_row_is_rejected_with_where_it_is_and_the_field(challenge_payload):
    rows = [
        challenge_payload,
        {**challenge_payload, "id": 7, "bedrooms": "two"},
        {key: value for key, value in challenge_payload.items() if key != "room_type"},
    ]
    valid, positions, rejected = validate_rows(rows, row_locations(3, 0, csv=True))
    assert positions == [0] and len(valid) == 1
    assert [row.location for row in rejected] == ["line 3", "line 4"]
    assert rejected[0].id == 7 and rejected[0].problem.startswith("bedrooms: ")
    assert rejected[1].problem == "room_type: Field required"


def test_each_rows_contract_problems_are_named_as_the_rejected_rows_name_them(challenge_payload):
    text = {key: str(value) for key, value in challenge_payload.items()}
    rows = pd.DataFrame([text, {**text, "bedrooms": "two"}, {**text, "bathrooms": "1.25"}])
    problems = contract_problems(rows, csv=True)
    assert problems[0] is None
    _, _, rejected = validate_rows(payloads(numbers_where_readable(rows)), ["a", "b", "c"])
    assert problems[1:] == [row.problem for row in rejected]
    assert problems[2] == "bathrooms: Input should be a multiple of 0.5"
    # Typed columns (Parquet's) are taken as they are; a gap is an absent field.
    typed = pd.DataFrame([challenge_payload, {**challenge_payload, "wifi": float("nan")}])
    assert contract_problems(typed, csv=False) == [None, None]


def test_rows_are_located_by_line_in_a_csv_and_by_row_elsewhere():
    assert row_locations(2, 5000, csv=True) == ["line 5002", "line 5003"]
    assert row_locations(2, 0, csv=False) == ["row 1", "row 2"]


def test_one_unreadable_cell_leaves_the_rest_of_its_column_numbers():
    text = pd.DataFrame({"id": ["1", "2", "3"], "bedrooms": ["2", "two", None]})
    typed = numbers_where_readable(text)
    assert typed["bedrooms"].tolist() == [2, "two", None]
    assert typed["id"].tolist() == ["1", "2", "3"]


def test_columns_the_api_does_not_take_are_named():
    assert columns_the_api_ignores(["id", "neighbourhood", "borough", "price", "wi_fi"]) == [
        "price",
        "wi_fi",
    ]


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.csv", "csv"), ("a.CSV.gz", "csv"), ("a.parquet", "parquet"), ("a.pq", "parquet")],
)
def test_the_file_kind_comes_from_its_name(name, kind):
    assert file_kind(Path(name)) == kind


def test_a_file_of_another_kind_is_refused():
    with pytest.raises(ScoringInputError, match=r"a.xlsx: .*\.csv, \.csv\.gz or \.parquet"):
        file_kind(Path("a.xlsx"))


def test_rejected_rows_go_beside_the_scores():
    assert rejected_path(Path("out/scores.csv.gz")) == Path("out/scores.rejected.csv")
    assert rejected_path(Path("scores.parquet")) == Path("scores.rejected.csv")


def test_the_scored_table_has_one_column_per_category_and_the_model():
    predictions = [
        {
            "id": 5,
            "price_category": "mid",
            "probabilities": {"low": 0.1, "mid": 0.6, "high": 0.2, "lux": 0.1},
        }
    ]
    table = scored_frame(predictions, ["line 2"], CATEGORIES, "airbnb-price-category", "3")
    assert list(table.columns) == [
        "location",
        "id",
        "price_category",
        "probability_low",
        "probability_mid",
        "probability_high",
        "probability_lux",
        "model_name",
        "model_version",
    ]
    assert table.iloc[0].to_dict()["probability_mid"] == 0.6
    assert table.iloc[0].to_dict()["model_version"] == "3"
