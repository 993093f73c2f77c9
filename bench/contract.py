"""Ways to serve the API's contract, measured by 5-fold CV of the training part on both views.

Callers send the API's required fields; the optional ones are never missing in training. This
measures, on the same folds and with the same decision step as training:

- the tuned blend as it is;
- the blend trained on the listings plus a copy of each with every optional field blanked
  (both copies inside the same fold's training rows, so no listing is on both sides);
- the blend on the features the required fields give, and nothing else;
- a router: the tuned blend for listings that carry every field, the required-fields blend
  for the rest (`routed_blend` in config.yaml).

    python bench/contract.py        # about 5 minutes on 2 cores; writes bench/results/contract.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from mlops_lab.common.files import write_json_atomically
from mlops_lab.config import load_config
from mlops_lab.kernel.features import resolve_features
from mlops_lab.kernel.listing import CATEGORICAL_FIELDS, OPTIONAL_FIELDS
from mlops_lab.kernel.modelling import build_model
from mlops_lab.stages.training.task import read_training_part
from mlops_lab.stages.training.transform import (
    HeldOut,
    cross_validated_scores,
    held_out_probabilities,
    routed_held_out,
    stratified_folds,
    vote_probabilities,
    with_decision,
)

ROOT = Path(__file__).resolve().parents[1]


class BlankedCopies(ClassifierMixin, BaseEstimator):
    """A model fitted on the listings and on a copy of each with the optional fields blanked."""

    def __init__(self, model: Any):
        self.model = model

    def fit(self, listings: pd.DataFrame, price_category: pd.Series) -> BlankedCopies:
        blanked = listings.copy()
        for name in OPTIONAL_FIELDS:
            blanked[name] = None if name in CATEGORICAL_FIELDS else np.nan
        self.model_ = clone(self.model).fit(
            pd.concat([listings, blanked], ignore_index=True),
            pd.concat([price_category, price_category], ignore_index=True),
        )
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, listings: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(listings)

    def __getitem__(self, index: int) -> Any:
        # Pipeline-like, so training's one-thread prediction reaches the forest inside.
        return self.model_[index]


def main() -> None:
    config = load_config(ROOT / "config.yaml")
    training = config.training
    candidates = {candidate.name: candidate for candidate in training.candidates}
    router_params = candidates["routed_blend"].params
    split = read_training_part(config, "measuring")
    features, target = split.train_features, split.train_target
    folds = stratified_folds(target, training.cv_folds, training.cv_random_state)

    def evidence(name: str, blanked: bool = False) -> HeldOut:
        candidate = candidates[name]
        features_used = resolve_features(candidate.features)
        model = build_model(candidate.estimator, features_used, candidate.params)
        probabilities, classes = held_out_probabilities(
            BlankedCopies(model) if blanked else model, features, target, folds
        )
        return with_decision(probabilities, classes, target, folds, candidate.decision)

    def blend(members: list[HeldOut]) -> HeldOut:
        probabilities = vote_probabilities(members)
        return with_decision(probabilities, members[0].classes, target, folds, "macro_f1")

    started = time.perf_counter()
    tuned = [evidence("tuned_gradient_boosting"), evidence("tuned_random_forest")]
    blanked = [
        evidence("tuned_gradient_boosting", blanked=True),
        evidence("tuned_random_forest", blanked=True),
    ]
    required = [
        evidence("required_fields_gradient_boosting"),
        evidence("required_fields_random_forest"),
    ]
    routes = [fields for _, fields, _ in build_model("field_router", (), router_params).routes]
    approaches = {
        "tuned_blend, as it is": blend(tuned),
        "tuned_blend trained with blanked copies": blend(blanked),
        "required_fields_blend": blend(required),
        "routed_blend": routed_held_out(routes, [blend(tuned), blend(required)], features),
    }
    results = {}
    for name, held_out in approaches.items():
        scores = cross_validated_scores(held_out, target, folds)
        results[name] = {
            view: {
                metric: round(mean[metric], 4) for metric in ("roc_auc_ovr", "macro_f1", "log_loss")
            }
            | {"roc_auc_ovr_std": round(spread["roc_auc_ovr"], 4)}
            for view, (mean, spread) in scores.items()
        }
        print(name, json.dumps(results[name]), flush=True)
    write_json_atomically(ROOT / "bench" / "results" / "contract.json", results)
    print(f"measured in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
