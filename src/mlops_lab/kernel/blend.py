"""A candidate's classifier when it blends others: the mean of their probabilities.

scikit-learn's VotingClassifier does the same sums, but keeps each fitted member twice
(`estimators_` and `named_estimators_`), which skops then saves twice: 96 MB instead of 52 MB
for tuned_blend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from mlops_lab.kernel.decision import weighted_labels


class SoftVoteClassifier(ClassifierMixin, BaseEstimator):
    """The mean of named member classifiers' probabilities; the label is the most probable."""

    def __init__(self, estimators: list[tuple[str, Any]]):
        self.estimators = estimators

    def fit(self, features: Any, price_category: Any) -> SoftVoteClassifier:
        return self.with_fitted_members(
            [clone(estimator).fit(features, price_category) for _, estimator in self.estimators]
        )

    def with_fitted_members(self, members: list[Any]) -> SoftVoteClassifier:
        """This vote over the given fitted members, in order (training fits each member once
        as a candidate of its own and reuses it here)."""
        self.estimators_ = list(members)
        self.classes_ = self.estimators_[0].classes_
        for (name, _), fitted in zip(self.estimators, self.estimators_, strict=True):
            if not np.array_equal(fitted.classes_, self.classes_):
                raise ValueError(
                    f"member {name} learnt classes {fitted.classes_}, not {self.classes_}"
                )
        return self

    def predict_proba(self, features: Any) -> np.ndarray:
        return np.mean(
            np.asarray([member.predict_proba(features) for member in self.estimators_]), axis=0
        )

    def predict(self, features: Any) -> np.ndarray:
        return weighted_labels(
            self.predict_proba(features), np.ones(len(self.classes_)), self.classes_
        )
