import numpy as np
import pandas as pd
import pytest
import skops.io
from small_models import (
    SMALL_BOOSTING,
    SMALL_ESTIMATORS,
    SMALL_FOREST,
    SMALL_ROUTER,
    SMALL_VOTE,
)

from mlops_lab.evaluation.scores import required_view
from mlops_lab.kernel.decision import row_decision_weights
from mlops_lab.kernel.features import ALL_FEATURES, REQUIRED_FEATURES
from mlops_lab.kernel.modelling import (
    SKOPS_TRUSTED_TYPES,
    assemble_soft_vote,
    build_model,
    predict_sequentially,
)


@pytest.mark.parametrize("estimator", sorted(SMALL_ESTIMATORS))
def test_model_predicts_the_challenge_payload_with_fields_missing(
    estimator, listing_sample, challenge_payload
):
    model = build_model(estimator, ALL_FEATURES, SMALL_ESTIMATORS[estimator])
    model.fit(listing_sample, listing_sample["price_category"])
    probabilities = model.predict_proba(pd.DataFrame([challenge_payload]))
    assert probabilities.shape == (1, 4)
    assert probabilities.sum() == pytest.approx(1.0)


def test_skops_trusted_types_are_exactly_what_the_models_need(listing_sample):
    needed: set[str] = set()
    models = [
        build_model(estimator, ALL_FEATURES, params, decision)
        for (estimator, params), decision in zip(
            SMALL_ESTIMATORS.items(), ("most_probable", "macro_f1", "macro_f1"), strict=True
        )
    ]
    models.append(build_model("field_router", (), SMALL_ROUTER))
    head = listing_sample.head(20)
    for model in models:
        model.fit(listing_sample, listing_sample["price_category"])
        needed |= set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
        loaded = skops.io.loads(skops.io.dumps(model), trusted=SKOPS_TRUSTED_TYPES)
        for view in (head, required_view(head)):
            assert np.array_equal(loaded.predict_proba(view), model.predict_proba(view))
    assert needed == set(SKOPS_TRUSTED_TYPES)


def test_a_vote_assembled_from_fitted_members_is_the_fitted_vote(listing_sample):
    target = listing_sample["price_category"]
    members = [
        (
            name,
            build_model(member["estimator"], ALL_FEATURES, member["params"]).fit(
                listing_sample, target
            ),
        )
        for name, member in SMALL_VOTE["members"].items()
    ]
    assembled = predict_sequentially(assemble_soft_vote(members, lambda vote: vote))
    fitted = predict_sequentially(
        build_model("soft_vote", ALL_FEATURES, SMALL_VOTE).fit(listing_sample, target)
    )
    assert np.array_equal(
        assembled.predict_proba(listing_sample), fitted.predict_proba(listing_sample)
    )
    # Unfitted members in the parameters, fitted ones once each: saved once, not twice.
    assert not hasattr(assembled[-1].estimators[0][1], "classes_")


def test_members_that_encode_other_features_cannot_share_a_vote(listing_sample):
    target = listing_sample["price_category"]
    members = [
        (
            "all",
            build_model("random_forest", ALL_FEATURES, SMALL_FOREST).fit(listing_sample, target),
        ),
        (
            "required",
            build_model("random_forest", REQUIRED_FEATURES, SMALL_FOREST).fit(
                listing_sample, target
            ),
        ),
    ]
    with pytest.raises(ValueError, match="member required encodes other features"):
        assemble_soft_vote(members, lambda vote: vote)


def test_predicting_sequentially_reaches_a_routers_forests(listing_sample):
    router = build_model("field_router", (), SMALL_ROUTER)
    router.fit(listing_sample, listing_sample["price_category"])
    predict_sequentially(router)
    forest = router.routes_[0][2][-1].estimator_.estimators_[0]
    assert forest.n_jobs == 1


def test_row_decision_weights_of_a_pipeline_repeat_its_decision(listing_sample):
    model = build_model("hist_gradient_boosting", ALL_FEATURES, SMALL_BOOSTING, "macro_f1")
    model.fit(listing_sample, listing_sample["price_category"])
    weights = row_decision_weights(model, listing_sample.head(3))
    assert weights.shape == (3, 4)
    assert (weights == model[-1].class_weights_).all()
