"""The models a candidate can be: built from its settings, predicted on one thread, labelled."""

from __future__ import annotations

from typing import Any

from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlops_lab.kernel.blend import SoftVoteClassifier
from mlops_lab.kernel.decision import MacroF1Decision, probability_model
from mlops_lab.kernel.features import (
    CATEGORICAL_FEATURES,
    ListingFeatures,
    input_fields,
    resolve_features,
)
from mlops_lab.kernel.routing import FieldRouter

MEMBER_ESTIMATORS = {
    "random_forest": RandomForestClassifier,
    "hist_gradient_boosting": HistGradientBoostingClassifier,
}

# How the classifier turns probabilities into a label: the most probable category, or
# probability weights learnt on held-out predictions to favour rare categories (decision.py).
DECISIONS = {
    "most_probable": lambda classifier: classifier,
    "macro_f1": MacroF1Decision,
}

# The types in our models that skops does not trust by default: exactly these, so loading a
# model file never runs anything else (tests/unit/test_modelling.py checks the list).
SKOPS_TRUSTED_TYPES = [
    "mlops_lab.kernel.blend.SoftVoteClassifier",
    "mlops_lab.kernel.decision.MacroF1Decision",
    "mlops_lab.kernel.features.ListingFeatures",
    "mlops_lab.kernel.routing.FieldRouter",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
]

Model = Pipeline | FieldRouter


def soft_vote(members: dict[str, dict[str, Any]]) -> SoftVoteClassifier:
    """The mean of the members' probabilities; each member is {estimator, params} by name."""
    return SoftVoteClassifier(
        [
            (name, MEMBER_ESTIMATORS[member["estimator"]](**member["params"]))
            for name, member in members.items()
        ]
    )


ESTIMATORS = {**MEMBER_ESTIMATORS, "soft_vote": soft_vote}


def build_model(
    estimator: str,
    features: tuple[str, ...],
    params: dict[str, Any],
    decision: str = "most_probable",
) -> Model:
    """One model from API-level listing fields to price categories: a Pipeline, or a router
    over member Pipelines ({estimator, features, params, decision} by name in `params`)."""
    if estimator == "field_router":
        return FieldRouter(
            [
                (
                    name,
                    input_fields(resolve_features(member["features"])),
                    build_model(
                        member["estimator"],
                        resolve_features(member["features"]),
                        member["params"],
                        member["decision"],
                    ),
                )
                for name, member in params["members"].items()
            ]
        )
    categorical = [name for name in features if name in CATEGORICAL_FEATURES]
    numeric = [name for name in features if name not in CATEGORICAL_FEATURES]
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            ),
            ("numeric", "passthrough", numeric),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline(
        [
            ("listing_features", ListingFeatures(features)),
            ("encode", encode),
            ("classifier", DECISIONS[decision](ESTIMATORS[estimator](**params))),
        ]
    )


def member_pipelines(model: Model) -> list[Pipeline]:
    """The Pipelines a model runs: itself, or a router's members."""
    if isinstance(model, FieldRouter):
        return [member for _, _, member in model.routes_]
    return [model]


def probability_members(classifier: Any) -> list[Any]:
    """The fitted classifiers whose probabilities a classifier averages, or the classifier."""
    if isinstance(classifier, SoftVoteClassifier):
        return list(classifier.estimators_)
    return [classifier]


def predict_sequentially(model: Model) -> Model:
    """The model set to predict on one thread: a forest then adds its trees in a fixed order,
    so the same inputs give bit-identical probabilities (threads finish in any order)."""
    for pipeline in member_pipelines(model):
        for classifier in probability_members(probability_model(pipeline[-1])):
            if "n_jobs" in classifier.get_params(deep=False):
                classifier.set_params(n_jobs=1)
    return model


def assemble_soft_vote(members: list[tuple[str, Pipeline]], decide: Any) -> Pipeline:
    """A soft vote's Pipeline from its fitted members' Pipelines, which share one feature and
    encoding step: the same model as fitting the vote, without fitting the members again.
    `decide` wraps the fitted vote in its decision step."""
    first = members[0][1]
    for name, member in members[1:]:
        if list(member[:-1].get_feature_names_out()) != list(first[:-1].get_feature_names_out()):
            raise ValueError(f"member {name} encodes other features than {members[0][0]}")
    fitted = [probability_model(member[-1]) for _, member in members]
    vote = SoftVoteClassifier(
        [(name, clone(classifier)) for (name, _), classifier in zip(members, fitted, strict=True)]
    ).with_fitted_members(fitted)
    return Pipeline(
        [
            ("listing_features", first.named_steps["listing_features"]),
            ("encode", first.named_steps["encode"]),
            ("classifier", decide(vote)),
        ]
    )
