"""Pure functions between JSON listing payloads and the model's inputs and outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shap


def payloads_to_frame(payloads: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per listing payload, fields as columns, in payload order."""
    return pd.DataFrame.from_records(payloads)


def format_predictions(
    ids: list[Any], probabilities: np.ndarray, categories: list[str], weights: np.ndarray
) -> list[dict[str, Any]]:
    """Each listing's id, the model's price category (its highest weighted probability) and
    rounded probability of every category."""
    return [
        {
            "id": listing_id,
            "price_category": categories[int(np.argmax(row * weights))],
            "probabilities": {
                name: round(float(p), 6) for name, p in zip(categories, row, strict=True)
            },
        }
        for listing_id, row in zip(ids, probabilities, strict=True)
    ]


def top_contributions(
    explanation: shap.Explanation, row: int, category: str, count: int
) -> list[dict[str, Any]]:
    """The features that moved one listing's probability of `category` most, largest first."""
    column = list(explanation.output_names).index(category)
    values = explanation.values[row, :, column]
    order = np.argsort(-np.abs(values))[:count]
    return [
        {
            "feature": explanation.feature_names[index],
            "value": round(float(explanation.data[row, index]), 6),
            "contribution": round(float(values[index]), 6),
        }
        for index in order
    ]
