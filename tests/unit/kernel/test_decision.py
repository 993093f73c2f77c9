import numpy as np
import pytest
import skops.io
from sklearn.metrics import f1_score
from sklearn.tree import DecisionTreeClassifier

from mlops_lab.kernel.decision import (
    MacroF1Decision,
    decision_weights,
    macro_f1_of_codes,
    macro_f1_weights,
    ordered_probabilities,
    probability_model,
    weighted_labels,
)
from mlops_lab.kernel.features import ALL_FEATURES
from mlops_lab.kernel.modelling import SKOPS_TRUSTED_TYPES, build_model

CLASSES = np.array(["common", "rare"])
SMALL_BOOSTING = {"max_iter": 10, "random_state": 0}


def test_weighted_labels_take_the_highest_weighted_probability():
    probabilities = np.array([[0.7, 0.3], [0.55, 0.45]])
    assert list(weighted_labels(probabilities, np.ones(2), CLASSES)) == ["common", "common"]
    assert list(weighted_labels(probabilities, np.array([1.0, 1.5]), CLASSES)) == [
        "common",
        "rare",
    ]


def test_macro_f1_weights_keep_argmax_when_it_is_already_perfect():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8]])
    truth = np.array(["common", "common", "rare"])
    assert list(macro_f1_weights(probabilities, truth, CLASSES)) == [1.0, 1.0]


def test_macro_f1_weights_favour_a_rare_class_the_argmax_never_names():
    # The rare listings get 0.4: the argmax calls all of them common (macro F1 0.44).
    probabilities = np.array([[0.9, 0.1]] * 8 + [[0.6, 0.4]] * 2)
    truth = np.array(["common"] * 8 + ["rare"] * 2)
    common, rare = macro_f1_weights(probabilities, truth, CLASSES)
    # Every listing labelled right: 0.4 × rare beats 0.6 × common, 0.1 × rare does not beat
    # 0.9 × common.
    assert 0.6 * common < 0.4 * rare
    assert 0.1 * rare < 0.9 * common


@pytest.fixture(scope="module")
def fitted(listing_sample):
    model = build_model("hist_gradient_boosting", ALL_FEATURES, SMALL_BOOSTING, "macro_f1")
    return model.fit(listing_sample, listing_sample["price_category"])


def test_the_decision_step_leaves_the_probabilities_of_its_classifier(fitted, listing_sample):
    plain = build_model("hist_gradient_boosting", ALL_FEATURES, SMALL_BOOSTING)
    plain.fit(listing_sample, listing_sample["price_category"])
    head = listing_sample.head(50)
    assert isinstance(fitted[-1], MacroF1Decision)
    assert np.array_equal(fitted.predict_proba(head), plain.predict_proba(head))


def test_the_decision_step_labels_with_its_learnt_weights():
    # A tree on one number whose leaves hold the class shares of its rows: 1.0 / 0.6 / 0.0
    # common for x = 0 / 1 / 2.
    x = np.array([[0]] * 10 + [[1]] * 10 + [[2]] * 5)
    truth = np.array(["common"] * 16 + ["rare"] * 4 + ["rare"] * 5)
    # Held-out predictions that call every rare listing 0.6 common: the weights learnt on them
    # must favour rare at 0.6 against 0.4.
    held_out = np.where((truth == "rare")[:, None], [0.6, 0.4], [0.9, 0.1])
    step = MacroF1Decision(DecisionTreeClassifier(random_state=0))
    step.fit(x, truth, held_out_probabilities=held_out)
    asked = np.array([[0], [1], [2]])
    assert step.predict_proba(asked).tolist() == [[1.0, 0.0], [0.6, 0.4], [0.0, 1.0]]
    # The most probable class would say common for x = 1; the learnt weights say rare.
    assert list(step.predict(asked)) == ["common", "rare", "rare"]


def test_a_plain_classifier_decides_by_the_most_probable_class(listing_sample):
    plain = build_model("random_forest", ("accommodates",), {"n_estimators": 3})
    plain.fit(listing_sample, listing_sample["price_category"])
    assert list(decision_weights(plain[-1])) == [1.0, 1.0, 1.0, 1.0]
    assert probability_model(plain[-1]) is plain[-1]


def test_the_decision_step_round_trips_through_skops(fitted, listing_sample):
    loaded = skops.io.loads(skops.io.dumps(fitted), trusted=SKOPS_TRUSTED_TYPES)
    assert np.array_equal(loaded.predict(listing_sample), fitted.predict(listing_sample))
    assert np.array_equal(decision_weights(loaded[-1]), decision_weights(fitted[-1]))


def test_given_held_out_probabilities_are_used_instead_of_refitting(listing_sample):
    target = listing_sample["price_category"]
    plain = build_model("hist_gradient_boosting", ALL_FEATURES, SMALL_BOOSTING)
    classes = np.sort(target.unique())
    # Held-out "predictions" that always say low: the weights must come from these.
    held_out = np.tile(np.eye(len(classes))[list(classes).index("low")], (len(target), 1))
    model = build_model("hist_gradient_boosting", ALL_FEATURES, SMALL_BOOSTING, "macro_f1")
    model.fit(listing_sample, target, classifier__held_out_probabilities=held_out)
    expected = macro_f1_weights(held_out, target.to_numpy(), classes)
    assert np.array_equal(decision_weights(model[-1]), expected)
    plain.fit(listing_sample, target)
    assert np.array_equal(model.predict_proba(listing_sample), plain.predict_proba(listing_sample))


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_of_codes_is_scikit_learns_macro_f1(seed):
    generator = np.random.default_rng(seed)
    truth = generator.integers(0, 4, size=300)
    # Class 3 is never predicted, as a rare class often is not: its F1 counts as zero.
    predicted = np.where(generator.random(300) < 0.6, truth, generator.integers(0, 3, size=300))
    predicted[predicted == 3] = 0
    expected = f1_score(truth, predicted, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    assert macro_f1_of_codes(truth, predicted, 4) == pytest.approx(expected, abs=1e-15)


def test_ordered_probabilities_follow_the_category_order(categories):
    probabilities = np.array([[0.1, 0.2, 0.3, 0.4]])
    ordered = ordered_probabilities(probabilities, ["high", "low", "lux", "mid"], categories)
    assert ordered.tolist() == [[0.2, 0.4, 0.1, 0.3]]
