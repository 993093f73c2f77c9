"""Pure functions between the model's answers and the API's JSON."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_lab.kernel.decision import weighted_labels


def format_predictions(
    ids: list[Any], probabilities: np.ndarray, categories: list[str], weights: np.ndarray
) -> list[dict[str, Any]]:
    """Each listing's id, its price category (the model's label: its highest weighted
    probability) and the rounded probability of every category."""
    labels = weighted_labels(probabilities, weights, np.asarray(categories))
    return [
        {
            "id": listing_id,
            "price_category": str(label),
            "probabilities": {
                name: round(float(p), 6) for name, p in zip(categories, row, strict=True)
            },
        }
        for listing_id, label, row in zip(ids, labels, probabilities, strict=True)
    ]
