import pandas as pd

from mlops_lab.evaluation.prepared import id_fraction, split_like_notebook
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS


def test_split_like_notebook_matches_train_test_split_and_is_repeatable(listing_sample):
    first = split_like_notebook(listing_sample, 0.15, 1)
    second = split_like_notebook(listing_sample, 0.15, 1)
    assert len(first.test_features) == 300
    assert first.test_features.index.equals(second.test_features.index)
    assert "price" not in first.train_features.columns
    assert "price_category" not in first.train_features.columns
    assert list(first.train_features.columns) == ["id", *MODEL_INPUT_FIELDS]


def from_feedback(listings, ids: list[int]):
    """New listings known from feedback alone: copies of the first ones under new ids."""
    added = listings.head(len(ids)).assign(id=ids, source="feedback")
    return pd.concat([listings.assign(source="raw"), added], ignore_index=True)


def test_listings_added_by_feedback_leave_every_raw_listings_part_as_it_was(listing_sample):
    before = split_like_notebook(listing_sample, 0.15, 1)
    grown = from_feedback(listing_sample, list(range(10**12, 10**12 + 500)))
    after = split_like_notebook(grown, 0.15, 1)
    raw_ids = set(listing_sample["id"])
    assert after.train_features[after.train_features["id"].isin(raw_ids)].equals(
        before.train_features
    )
    assert after.test_features[after.test_features["id"].isin(raw_ids)].equals(before.test_features)
    added_test = set(after.test_features["id"]) - raw_ids
    added_train = set(after.train_features["id"]) - raw_ids
    assert len(added_test) + len(added_train) == 500
    # In the same proportion, as a fair coin of 500 throws gives it.
    assert 40 <= len(added_test) <= 110, len(added_test)


def test_a_new_listings_part_depends_on_its_id_alone(listing_sample):
    ids = list(range(10**12, 10**12 + 50))
    alone = split_like_notebook(from_feedback(listing_sample.head(300), ids), 0.15, 1)
    crowded = split_like_notebook(from_feedback(listing_sample, ids[::-1]), 0.15, 1)
    assert set(alone.test_features["id"]) & set(ids) == set(crowded.test_features["id"]) & set(ids)
    assert {id_fraction(i) < 0.15 for i in ids} == {True, False}
