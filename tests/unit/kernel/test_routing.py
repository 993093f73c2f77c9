import numpy as np
import pytest
from small_models import SMALL_ROUTER

from mlops_lab.evaluation.scores import required_view
from mlops_lab.kernel.decision import decision_weights
from mlops_lab.kernel.features import conform_listings, present_fields
from mlops_lab.kernel.modelling import build_model
from mlops_lab.kernel.routing import route_listings


@pytest.fixture(scope="module")
def router(listing_sample):
    return build_model("field_router", (), SMALL_ROUTER).fit(
        listing_sample, listing_sample["price_category"]
    )


def test_each_listing_goes_to_the_first_route_whose_fields_it_carries():
    present = {
        "a": np.array([True, True, False, False]),
        "b": np.array([True, False, True, False]),
    }
    routes = [("a", "b"), ("a",), ()]
    assert route_listings(present, routes).tolist() == [0, 1, 2, 2]


def test_the_last_route_takes_listings_no_other_route_can(listing_sample):
    present = present_fields(conform_listings(listing_sample.head(4)))
    assert route_listings(present, [("accommodates",), ("beds",)]).tolist() == [0] * 4
    assert route_listings({"a": np.array([False])}, [("a",), ("a",)]).tolist() == [1]


def test_complete_listings_get_the_full_member_and_the_rest_the_required_one(
    router, listing_sample
):
    listings = listing_sample.head(40)
    callers = required_view(listings)
    everything, required_only = (member for _, _, member in router.routes_)
    assert router.route(listings).tolist() == [0] * 40
    assert router.route(callers).tolist() == [1] * 40
    assert np.array_equal(router.predict_proba(listings), everything.predict_proba(listings))
    assert np.array_equal(router.predict_proba(callers), required_only.predict_proba(callers))


def test_a_batch_of_both_kinds_is_answered_listing_by_listing(router, listing_sample):
    listings = listing_sample.head(10).copy()
    # One optional field missing is enough to take the required route.
    listings.loc[listings.index[::2], "kitchen"] = np.nan
    mixed = router.predict_proba(listings)
    one_by_one = np.vstack([router.predict_proba(listings.iloc[[row]]) for row in range(10)])
    assert np.array_equal(mixed, one_by_one)
    assert router.route(listings).tolist() == [1, 0] * 5


def test_labels_use_the_answering_members_decision(router, listing_sample):
    listings = listing_sample.head(6).copy()
    listings.loc[listings.index[:3], "wifi"] = np.nan
    weights = router.row_decision_weights(listings)
    members = [decision_weights(member[-1]) for _, _, member in router.routes_]
    assert (weights[:3] == members[1]).all() and (weights[3:] == members[0]).all()
    expected = router.classes_[np.argmax(router.predict_proba(listings) * weights, axis=1)]
    assert router.predict(listings).tolist() == expected.tolist()


def test_a_router_assembled_from_fitted_members_is_the_fitted_router(router, listing_sample):
    members = [member for _, _, member in router.routes_]
    assembled = build_model("field_router", (), SMALL_ROUTER).with_fitted_members(members)
    head = listing_sample.head(30)
    for view in (head, required_view(head)):
        assert np.array_equal(assembled.predict_proba(view), router.predict_proba(view))
