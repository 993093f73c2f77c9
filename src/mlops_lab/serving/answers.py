"""Pure functions between the model's answers and the API's JSON."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_lab.kernel.contract import PROBABILITY_DECIMALS
from mlops_lab.kernel.decision import weighted_labels


def format_predictions(
    ids: list[Any], probabilities: np.ndarray, categories: list[str], weights: np.ndarray
) -> list[dict[str, Any]]:
    """Each listing's id, its price category (the model's label: its highest weighted
    probability) and the rounded probability of every category."""
    labels = weighted_labels(probabilities, weights, np.asarray(categories))
    # As Python floats and strings in one call each: the same values, without a NumPy scalar
    # per probability (half the time of a 1,000-listing answer's formatting).
    return [
        {
            "id": listing_id,
            "price_category": label,
            "probabilities": {
                name: round(p, PROBABILITY_DECIMALS)
                for name, p in zip(categories, row, strict=True)
            },
        }
        for listing_id, label, row in zip(
            ids, labels.astype(str).tolist(), probabilities.tolist(), strict=True
        )
    ]
