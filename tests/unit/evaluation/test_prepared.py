from mlops_lab.evaluation.prepared import split_like_notebook
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS


def test_split_like_notebook_matches_train_test_split_and_is_repeatable(listing_sample):
    first = split_like_notebook(listing_sample, 0.15, 1)
    second = split_like_notebook(listing_sample, 0.15, 1)
    assert len(first.test_features) == 300
    assert first.test_features.index.equals(second.test_features.index)
    assert "price" not in first.train_features.columns
    assert "price_category" not in first.train_features.columns
    assert list(first.train_features.columns) == ["id", *MODEL_INPUT_FIELDS]
