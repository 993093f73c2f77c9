"""Pure functions that turn a model's predictions and SHAP values into tables and figures.

Figures put the two views side by side: every field sent (full) and only the API's required
fields sent (required), which is what most callers send."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from mlops_lab.kernel.listing import CATEGORICAL_FIELDS
from mlops_lab.serving.attribution import Attributions

VIEW_TITLES = {"full": "every field sent", "required": "only the required fields sent"}

# The fields named in the metrics file, per view.
TOP_FIELDS = 5


def _panels(views: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    """A figure with one panel per view, side by side."""
    figure, grid = plt.subplots(1, views, figsize=(width * views, height), squeeze=False)
    return figure, list(grid[0])


def mean_abs_shap(explanation: Attributions, categories: list[str]) -> pd.DataFrame:
    """Mean |SHAP| of each listing field for each category, fields sorted by their total;
    fields that no explained listing carried are left out."""
    positions = [list(explanation.output_names).index(name) for name in categories]
    values = np.abs(explanation.values[:, :, positions]).mean(axis=0)
    table = pd.DataFrame(values, index=explanation.feature_names, columns=categories)
    table = table[~np.isnan(np.asarray(explanation.data, dtype=float)).all(axis=0)]
    return table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]


def normalized_confusion(
    truth: pd.Series, predicted: np.ndarray, categories: list[str]
) -> pd.DataFrame:
    """The confusion matrix with each true category's row summing to 1."""
    matrix = confusion_matrix(truth, predicted, labels=categories, normalize="true")
    return pd.DataFrame(matrix, index=categories, columns=categories)


def mean_abs_shap_figure(tables: dict[str, pd.DataFrame]) -> Figure:
    """Per view, stacked horizontal bars: each listing field's mean |SHAP| per category."""
    rows = max(len(table) for table in tables.values())
    figure, panels = _panels(len(tables), 7, 0.35 * rows + 1.8)
    for axes, (view, table) in zip(panels, tables.items(), strict=True):
        table.iloc[::-1].plot.barh(stacked=True, ax=axes, width=0.75)
        axes.set_xlabel("mean |SHAP value| (change in class probability)")
        axes.set_title(f"What moves each category: {VIEW_TITLES[view]}")
        axes.legend(title="price category", loc="lower right")
    figure.tight_layout()
    return figure


@contextmanager
def seeded_global_random(seed: int) -> Iterator[None]:
    """NumPy's global random state seeded for the block, then put back: shap's beeswarm
    shuffles its dots with it, and the same SHAP values should draw the same picture."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def beeswarm_figure(explanation: Attributions, categories: list[str]) -> Figure:
    """One SHAP beeswarm per category, one row per listing field: how each field's values
    push that category up or down (categorical fields, which have no order, in grey)."""
    shown = explanation.data.astype(float)
    for column, name in enumerate(explanation.feature_names):
        if name in CATEGORICAL_FIELDS:
            shown[:, column] = np.nan
    display = shap.Explanation(
        values=explanation.values,
        base_values=explanation.base_values,
        data=shown,
        feature_names=explanation.feature_names,
    )
    columns = 2
    rows = -(-len(categories) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(16, 6.5 * rows))
    for axes, category in zip(np.ravel(grid), categories, strict=False):
        position = list(explanation.output_names).index(category)
        with warnings.catch_warnings(), seeded_global_random(position):
            # shap takes each field's colour range with nanpercentile: all-NaN (grey) is meant.
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
            shap.plots.beeswarm(
                display[:, :, position],
                max_display=len(explanation.feature_names),
                ax=axes,
                show=False,
                plot_size=None,
            )
        axes.set_title(f"P({category})")
    for axes in np.ravel(grid)[len(categories) :]:
        axes.set_visible(False)
    figure.tight_layout()
    return figure


def confusion_figure(matrices: dict[str, pd.DataFrame]) -> Figure:
    """Per view, a heat map of the normalized confusion matrix, each cell labelled."""
    figure, panels = _panels(len(matrices), 6, 5)
    for axes, (view, matrix) in zip(panels, matrices.items(), strict=True):
        image = axes.imshow(matrix.to_numpy(), cmap="Blues", vmin=0, vmax=1)
        axes.set_xticks(range(len(matrix.columns)), matrix.columns)
        axes.set_yticks(range(len(matrix.index)), matrix.index)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        for row in range(len(matrix.index)):
            for column in range(len(matrix.columns)):
                value = matrix.iat[row, column]
                axes.text(
                    column,
                    row,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    color="white" if value > 0.5 else "black",
                )
        figure.colorbar(image, ax=axes, label="share of true category")
        axes.set_title(f"Test part, {VIEW_TITLES[view]} (rows sum to 1)")
    figure.tight_layout()
    return figure


def per_class_figure(per_class: dict[str, dict[str, dict[str, float]]]) -> Figure:
    """Per view, grouped bars of precision and recall per category, support in the labels."""
    figure, panels = _panels(len(per_class), 7, 4.5)
    for axes, (view, scores) in zip(panels, per_class.items(), strict=True):
        categories = list(scores)
        positions = np.arange(len(categories))
        for offset, measure in ((-0.2, "precision"), (0.2, "recall")):
            values = [scores[name][measure] for name in categories]
            bars = axes.bar(positions + offset, values, width=0.4, label=measure)
            axes.bar_label(bars, fmt="%.2f", fontsize=8)
        axes.set_xticks(
            positions, [f"{name}\n(n={int(scores[name]['support'])})" for name in categories]
        )
        axes.set_ylim(0, 1.05)
        axes.set_ylabel("score on the test part")
        axes.set_title(f"Precision and recall: {VIEW_TITLES[view]}")
        axes.legend()
    figure.tight_layout()
    return figure


def reliability_table(
    truth: pd.Series, probabilities: np.ndarray, categories: list[str], bins: int
) -> pd.DataFrame:
    """Per category and probability bin (equal counts): mean predicted vs observed frequency."""
    rows = []
    for column, category in enumerate(categories):
        predicted = probabilities[:, column]
        observed = (np.asarray(truth) == category).astype(float)
        # Equal-count bins: a rare category's few confident listings still get a point.
        edges = np.unique(np.quantile(predicted, np.linspace(0, 1, bins + 1)))
        bin_of = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, len(edges) - 2)
        for index in np.unique(bin_of):
            members = bin_of == index
            rows.append(
                {
                    "category": category,
                    "mean_predicted": float(predicted[members].mean()),
                    "observed": float(observed[members].mean()),
                    "listings": int(members.sum()),
                }
            )
    return pd.DataFrame(rows)


def expected_calibration_error(reliability: pd.DataFrame) -> dict[str, float]:
    """Per category, the listing-weighted mean gap between predicted and observed frequency."""
    gap = (reliability["mean_predicted"] - reliability["observed"]).abs() * reliability["listings"]
    totals = reliability.assign(gap=gap).groupby("category", sort=False)[["gap", "listings"]].sum()
    return {str(name): float(row.gap / row.listings) for name, row in totals.iterrows()}


def reliability_figure(
    reliability: dict[str, pd.DataFrame], calibration_error: dict[str, dict[str, float]]
) -> Figure:
    """Per view, a reliability diagram: each category's predicted probability against how
    often it was true."""
    figure, panels = _panels(len(reliability), 6, 6)
    for axes, (view, table) in zip(panels, reliability.items(), strict=True):
        axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
        for category, points in table.groupby("category", sort=False):
            axes.plot(
                points["mean_predicted"],
                points["observed"],
                marker="o",
                markersize=4,
                label=f"{category} (ECE {calibration_error[view][str(category)]:.3f})",
            )
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("predicted probability (mean over a bin of listings)")
        axes.set_ylabel("share of those listings in the category")
        axes.set_title(f"Reliability on the test part: {VIEW_TITLES[view]}")
        axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def metrics_document(
    importance: dict[str, pd.DataFrame],
    per_class: dict[str, dict[str, dict[str, float]]],
    calibration_error: dict[str, dict[str, float]],
    categories: list[str],
) -> dict[str, Any]:
    """Per view: the fields that matter most, and recall, precision and calibration error per
    category, rounded for a stable metrics file."""
    return {
        view: {
            "top_fields": list(importance[view].index[:TOP_FIELDS]),
            "recall": {name: round(per_class[view][name]["recall"], 6) for name in categories},
            "precision": {
                name: round(per_class[view][name]["precision"], 6) for name in categories
            },
            "expected_calibration_error": {
                name: round(calibration_error[view][name], 6) for name in categories
            },
        }
        for view in importance
    }
