"""Pure functions that turn a model's predictions and SHAP values into tables and figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix
from sklearn.pipeline import Pipeline


def shap_explanation(
    model: Pipeline,
    listings: pd.DataFrame,
    background: pd.DataFrame,
    permutations: int,
    seed: int,
) -> shap.Explanation:
    """SHAP values (listing × model feature × class) of the classifier on its own feature space."""
    features = model[:-1]
    explained = features.transform(listings)
    names = [str(name) for name in features.get_feature_names_out()]
    explainer = shap.PermutationExplainer(
        model[-1].predict_proba,
        shap.maskers.Independent(features.transform(background), max_samples=len(background)),
        feature_names=names,
        seed=seed,
    )
    # Each antithetic permutation costs two model calls per feature, plus one.
    evaluations = permutations * (2 * len(names) + 1)
    explanation = explainer(np.asarray(explained, dtype=float), max_evals=evaluations, silent=True)
    explanation.output_names = [str(name) for name in model.classes_]
    return explanation


def mean_abs_shap(explanation: shap.Explanation, categories: list[str]) -> pd.DataFrame:
    """Mean |SHAP| of each feature for each category, features sorted by their total."""
    positions = [list(explanation.output_names).index(name) for name in categories]
    values = np.abs(explanation.values[:, :, positions]).mean(axis=0)
    table = pd.DataFrame(values, index=explanation.feature_names, columns=categories)
    return table.loc[table.sum(axis=1).sort_values(ascending=False).index]


def normalized_confusion(
    truth: pd.Series, predicted: np.ndarray, categories: list[str]
) -> pd.DataFrame:
    """The confusion matrix with each true category's row summing to 1."""
    matrix = confusion_matrix(truth, predicted, labels=categories, normalize="true")
    return pd.DataFrame(matrix, index=categories, columns=categories)


def mean_abs_shap_figure(table: pd.DataFrame, top: int) -> Figure:
    """Stacked horizontal bars: each feature's mean |SHAP| per category."""
    shown = table.head(top).iloc[::-1]
    figure, axes = plt.subplots(figsize=(9, 0.35 * len(shown) + 1.5))
    shown.plot.barh(stacked=True, ax=axes, width=0.75)
    axes.set_xlabel("mean |SHAP value| (change in class probability)")
    axes.set_title(f"Top {len(shown)} features by mean |SHAP|, per price category")
    axes.legend(title="price category", loc="lower right")
    figure.tight_layout()
    return figure


def beeswarm_figure(explanation: shap.Explanation, categories: list[str], top: int) -> Figure:
    """One SHAP beeswarm per category: how each feature's values push that category up or down."""
    columns = 2
    rows = -(-len(categories) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(16, 5.5 * rows))
    for axes, category in zip(np.ravel(grid), categories, strict=False):
        position = list(explanation.output_names).index(category)
        shap.plots.beeswarm(
            explanation[:, :, position], max_display=top, ax=axes, show=False, plot_size=None
        )
        axes.set_title(f"P({category})")
    for axes in np.ravel(grid)[len(categories) :]:
        axes.set_visible(False)
    figure.tight_layout()
    return figure


def confusion_figure(matrix: pd.DataFrame) -> Figure:
    """Heat map of the normalized confusion matrix, each cell labelled."""
    figure, axes = plt.subplots(figsize=(6, 5))
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
    axes.set_title("Confusion matrix on the test part (rows sum to 1)")
    figure.tight_layout()
    return figure


def per_class_figure(per_class: dict[str, dict[str, float]]) -> Figure:
    """Grouped bars of precision and recall per category, with support in the labels."""
    categories = list(per_class)
    positions = np.arange(len(categories))
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for offset, measure in ((-0.2, "precision"), (0.2, "recall")):
        values = [per_class[name][measure] for name in categories]
        bars = axes.bar(positions + offset, values, width=0.4, label=measure)
        axes.bar_label(bars, fmt="%.2f", fontsize=8)
    axes.set_xticks(
        positions, [f"{name}\n(n={int(per_class[name]['support'])})" for name in categories]
    )
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score on the test part")
    axes.set_title("Precision and recall per price category")
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


def reliability_figure(reliability: pd.DataFrame, calibration_error: dict[str, float]) -> Figure:
    """Reliability diagram: each category's predicted probability against how often it was true."""
    figure, axes = plt.subplots(figsize=(6, 6))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for category, points in reliability.groupby("category", sort=False):
        axes.plot(
            points["mean_predicted"],
            points["observed"],
            marker="o",
            markersize=4,
            label=f"{category} (ECE {calibration_error[str(category)]:.3f})",
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("predicted probability (mean over a bin of listings)")
    axes.set_ylabel("share of those listings in the category")
    axes.set_title("Reliability on the test part, one category against the rest")
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure
