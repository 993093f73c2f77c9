"""SHAP values in the listing's own terms: one value per field the caller sends.

Explaining the classifier after one-hot encoding would report `room_type_Private room` and
`room_type_Entire home/apt` as separate features, and masking those columns one by one makes
listings that cannot exist (two room types, or none). Here SHAP masks the listing's fields:
each categorical field is one column of codes, so it is replaced whole, and derived features
(distance to Midtown, ratios…) are computed from the masked fields, so their effect is
credited to the fields they come from. A field the listing does not carry stays absent in
every coalition, so it gets no credit and the model answers as it does for the listing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlops_lab.kernel.features import Columns, present_fields
from mlops_lab.kernel.listing import CATEGORICAL_FIELDS, MODEL_INPUT_FIELDS

# Listing fields (conformed columns) → probabilities, one column per category.
Answer = Callable[[Columns], np.ndarray]


@dataclass(frozen=True)
class Attributions:
    """SHAP values of listings: `values` is listing × field × category, and each listing's
    `base_values` plus its values summed over fields give its probabilities. The fields of
    shap.Explanation, without shap, which the prediction service does not install."""

    values: np.ndarray
    base_values: np.ndarray
    data: np.ndarray
    feature_names: list[str]
    output_names: list[str]


@dataclass(frozen=True)
class FieldCodes:
    """Listing fields as one numeric matrix: numbers as they are, each categorical as its
    position in a list of the values seen (NaN when absent)."""

    vocabularies: dict[str, list[str]]

    def encode(self, listings: Columns, fields: tuple[str, ...]) -> np.ndarray:
        """The fields' values as columns of a float matrix."""
        columns = []
        for name in fields:
            values = listings[name]
            if name in CATEGORICAL_FIELDS:
                position = {value: code for code, value in enumerate(self.vocabularies[name])}
                values = np.array(
                    [np.nan if value is None else position[value] for value in values], dtype=float
                )
            columns.append(np.asarray(values, dtype=float))
        return np.column_stack(columns)

    def decode(self, matrix: np.ndarray, fields: tuple[str, ...]) -> Columns:
        """Listing fields from such a matrix; fields not given are absent."""
        rows = len(matrix)
        listings: Columns = {
            name: (
                np.full(rows, None, dtype=object)
                if name in CATEGORICAL_FIELDS
                else np.full(rows, np.nan)
            )
            for name in MODEL_INPUT_FIELDS
        }
        for column, name in enumerate(fields):
            values = matrix[:, column]
            if name in CATEGORICAL_FIELDS:
                vocabulary = np.asarray(self.vocabularies[name] + [None], dtype=object)
                codes = np.where(np.isnan(values), len(vocabulary) - 1, values).astype(np.intp)
                listings[name] = vocabulary[codes]
            else:
                listings[name] = values
        return listings


def field_codes(*tables: Columns) -> FieldCodes:
    """Codes for every categorical value in the tables."""
    return FieldCodes(
        {
            name: sorted({value for table in tables for value in table[name] if value is not None})
            for name in CATEGORICAL_FIELDS
        }
    )


def _take(listings: Columns, rows: np.ndarray) -> Columns:
    return {name: values[rows] for name, values in listings.items()}


# Masked listings per model call: small enough that the tree walk stays in the CPU cache (a
# call of 50,000 rows took 1.75 times as long per row), large enough that per-call costs stay small.
ROWS_PER_CALL = 4_000


def permutation_shap(
    answer: Callable[[np.ndarray], np.ndarray],
    explained: np.ndarray,
    background: np.ndarray,
    permutations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Permutation SHAP values (listing × field × output) and base values (listing × output)
    of `answer` on a matrix of fields, masking with background rows.

    The estimator of shap's PermutationExplainer: for each listing, fields join a coalition in
    a random order and then in the reverse order (antithetic sampling); each field gets the
    change in the mean answer over the background as it joins. Here every listing of a batch
    is masked at once and answered in a few large calls, instead of one listing at a time."""
    listings, fields = explained.shape
    # A coalition of no field is the background itself, the same for every listing, and one of
    # every field is the listing: each is answered once, not once per listing and background row.
    base = answer(background).mean(axis=0)
    own = answer(explained)
    outputs = len(base)
    inner_joins = np.arange(1, fields)[None, :, None]
    chunk = max(1, ROWS_PER_CALL // (max(fields - 1, 1) * len(background)))
    values = np.zeros((listings, fields, outputs))
    for _ in range(permutations):
        orders = np.argsort(rng.random((listings, fields)), axis=1)
        for order in (orders, orders[:, ::-1]):
            # ranks[i, f]: when field f joins listing i's coalition.
            ranks = np.empty_like(order)
            ranks[np.arange(listings)[:, None], order] = np.arange(fields)
            for start in range(0, listings, chunk):
                rows = np.arange(start, min(start + chunk, listings))
                kept = ranks[rows][:, None, :] < inner_joins
                masked = np.where(
                    kept[:, :, None, :], explained[rows][:, None, None, :], background[None, None]
                )
                inner = (
                    answer(masked.reshape(-1, fields))
                    .reshape(*masked.shape[:3], outputs)
                    .mean(axis=2)
                    if fields > 1
                    else np.empty((len(rows), 0, outputs))
                )
                means = np.concatenate(
                    [np.broadcast_to(base, (len(rows), 1, outputs)), inner, own[rows][:, None]],
                    axis=1,
                )
                values[rows[:, None], order[rows]] += np.diff(means, axis=1)
    return values / (2 * permutations), np.tile(base, (listings, 1))


def explain_listings(
    answer: Answer,
    listings: Columns,
    background: Columns,
    categories: list[str],
    permutations: int,
    seed: int,
) -> Attributions:
    """SHAP values (listing × listing field × category) of `answer`, masking with background
    listings, over `permutations` antithetic pairs of random orders; fields a listing lacks
    get zero and stay absent while it is explained."""
    codes = field_codes(listings, background)
    present = present_fields(listings)
    carried = np.column_stack([present[name] for name in MODEL_INPUT_FIELDS])
    rows = len(carried)
    values = np.zeros((rows, len(MODEL_INPUT_FIELDS), len(categories)))
    base_values = np.zeros((rows, len(categories)))
    data = codes.encode(listings, MODEL_INPUT_FIELDS)
    # Listings that carry the same fields are explained together, against a background that
    # carries those fields only: the model sees each coalition as it would see the listing.
    rng = np.random.default_rng(seed)
    for pattern in np.unique(carried, axis=0):
        group = np.flatnonzero((carried == pattern).all(axis=1))
        fields = tuple(name for name, kept in zip(MODEL_INPUT_FIELDS, pattern, strict=True) if kept)
        columns = [MODEL_INPUT_FIELDS.index(name) for name in fields]
        group_values, group_base = permutation_shap(
            lambda matrix, fields=fields: answer(codes.decode(matrix, fields)),
            codes.encode(_take(listings, group), fields),
            codes.encode(background, fields),
            permutations,
            rng,
        )
        values[np.ix_(group, columns)] = group_values
        base_values[group] = group_base
    return Attributions(
        values=values,
        base_values=base_values,
        data=data,
        feature_names=list(MODEL_INPUT_FIELDS),
        output_names=list(categories),
    )


def shown_value(listings: Columns, row: int, field: str) -> object:
    """A field's value for one listing as the model took it: text, a number, or None."""
    value = listings[field][row]
    if field in CATEGORICAL_FIELDS or value is None:
        return value
    return None if np.isnan(value) else float(value)


def top_contributions(
    explanation: Attributions, listings: Columns, row: int, category: str, count: int
) -> list[dict[str, object]]:
    """The fields that moved one listing's probability of `category` most, largest first."""
    column = list(explanation.output_names).index(category)
    contributions = explanation.values[row, :, column]
    order = np.argsort(-np.abs(contributions), kind="stable")[:count]
    return [
        {
            "field": explanation.feature_names[index],
            "value": shown_value(listings, row, explanation.feature_names[index]),
            "contribution": round(float(contributions[index]), 6),
        }
        for index in order
    ]
