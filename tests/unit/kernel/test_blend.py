import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.tree import DecisionTreeClassifier

from mlops_lab.kernel.blend import SoftVoteClassifier

FEATURES = pd.DataFrame({"size": [1, 2, 3, 4, 5, 6, 7, 8]})
PRICE = pd.Series(["low", "low", "low", "mid", "mid", "high", "high", "high"])


def test_probabilities_are_the_members_mean_and_the_label_the_most_probable():
    tree = DecisionTreeClassifier(max_depth=1, random_state=0)
    prior = DummyClassifier(strategy="prior")
    vote = SoftVoteClassifier([("tree", tree), ("prior", prior)]).fit(FEATURES, PRICE)
    expected = (
        clone(tree).fit(FEATURES, PRICE).predict_proba(FEATURES)
        + prior.fit(FEATURES, PRICE).predict_proba(FEATURES)
    ) / 2
    assert list(vote.classes_) == ["high", "low", "mid"]
    assert np.allclose(vote.predict_proba(FEATURES), expected)
    assert list(vote.predict(FEATURES)) == list(vote.classes_[np.argmax(expected, axis=1)])


def test_a_clone_is_unfitted_with_the_same_members():
    vote = SoftVoteClassifier([("prior", DummyClassifier())]).fit(FEATURES, PRICE)
    copy = clone(vote)
    assert not hasattr(copy, "estimators_")
    assert copy.get_params()["estimators"][0][0] == "prior"


def test_members_that_learn_different_classes_are_refused():
    class Shifted(DummyClassifier):
        def fit(self, features, price_category, sample_weight=None):
            return super().fit(features, price_category.replace("lux", "high"))

    lux = PRICE.replace("high", "lux")
    with pytest.raises(ValueError, match="member shifted learnt classes"):
        SoftVoteClassifier([("prior", DummyClassifier()), ("shifted", Shifted())]).fit(
            FEATURES, lux
        )
