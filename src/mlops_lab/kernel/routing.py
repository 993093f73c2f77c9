"""A candidate's model when it routes: each listing to a member trained on the fields it has.

Callers send the API's required fields, and only some add the optional ones. A model trained
on listings that always carry every field has never learnt what an absent field means, and
scores worse on the listings callers actually send than a model trained without those fields.
Routing serves each listing with the member that was trained on exactly the fields it carries.
Measured by 5-fold CV of the training part (docs/model-study.md), routing beat
training one model on copies of the listings with the optional fields blanked, on both views.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from mlops_lab.kernel.decision import decision_weights, weighted_labels
from mlops_lab.kernel.features import conform_listings, present_fields


def route_listings(present: dict[str, np.ndarray], routes: list[tuple[str, ...]]) -> np.ndarray:
    """Per listing, the first route whose fields it all carries; the last route otherwise."""
    listings = len(next(iter(present.values())))
    chosen = np.full(listings, len(routes) - 1, dtype=np.intp)
    undecided = np.ones(listings, dtype=bool)
    for position, fields in enumerate(routes[:-1]):
        carries = np.logical_and.reduce([present[field] for field in fields], initial=True)
        taken = undecided & carries
        chosen[taken] = position
        undecided &= ~taken
    return chosen


class FieldRouter(ClassifierMixin, BaseEstimator):
    """Members by name with the listing fields each needs; a listing goes to the first member
    whose fields it has, and the last member takes every other listing."""

    def __init__(self, routes: list[tuple[str, tuple[str, ...], Any]]):
        self.routes = routes

    def fit(self, listings: pd.DataFrame, price_category: Any) -> FieldRouter:
        """Fit every member on all listings: each learns from the fields it needs."""
        return self.with_fitted_members(
            [clone(model).fit(listings, price_category) for _, _, model in self.routes]
        )

    def with_fitted_members(self, members: list[Any]) -> FieldRouter:
        """This router with the given fitted members, in route order (training fits each
        member once as a candidate of its own and reuses it here)."""
        self.routes_ = [
            (name, tuple(fields), member)
            for (name, fields, _), member in zip(self.routes, members, strict=True)
        ]
        self.classes_ = np.asarray(members[0].classes_)
        for name, _, member in self.routes_:
            if not np.array_equal(member.classes_, self.classes_):
                raise ValueError(
                    f"member {name} learnt classes {member.classes_}, not {self.classes_}"
                )
        return self

    def route(self, listings: pd.DataFrame) -> np.ndarray:
        """The position of the member that answers each listing."""
        present = present_fields(conform_listings(listings))
        return route_listings(present, [fields for _, fields, _ in self.routes_])

    def predict_proba(self, listings: pd.DataFrame) -> np.ndarray:
        chosen = self.route(listings)
        probabilities = np.empty((len(listings), len(self.classes_)))
        for position, (_, _, member) in enumerate(self.routes_):
            rows = chosen == position
            if rows.any():
                probabilities[rows] = member.predict_proba(listings[rows])
        return probabilities

    def row_decision_weights(self, listings: pd.DataFrame) -> np.ndarray:
        """Each listing's label weights: those of the member that answers it."""
        members = np.asarray([decision_weights(member[-1]) for _, _, member in self.routes_])
        return members[self.route(listings)]

    def predict(self, listings: pd.DataFrame) -> np.ndarray:
        return weighted_labels(
            self.predict_proba(listings), self.row_decision_weights(listings), self.classes_
        )
