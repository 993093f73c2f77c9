"""Pure functions for the feature-group ablation: which features each run keeps, and the table."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

NOTHING_REMOVED = "nothing (all features)"
ABLATION_METRICS = ("roc_auc_ovr", "macro_f1", "log_loss")


def ablation_feature_sets(
    features: tuple[str, ...], groups: dict[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """The candidate's features, then the same without each group it uses, by removed group."""
    sets = {NOTHING_REMOVED: features}
    for group, members in groups.items():
        kept = tuple(name for name in features if name not in members)
        if 0 < len(kept) < len(features):
            sets[group] = kept
    return sets


def ablation_table(
    scores: dict[str, list[dict[str, float]]], feature_counts: dict[str, int]
) -> pd.DataFrame:
    """Per removed group: mean CV scores, and the mean and spread over the same folds of the
    change from all features; the groups that cost the most ROC AUC when removed first."""
    full = scores[NOTHING_REMOVED]
    rows = []
    for removed, folds in scores.items():
        row: dict[str, object] = {"removed": removed, "features": feature_counts[removed]}
        for metric in ABLATION_METRICS:
            values = np.array([fold[metric] for fold in folds])
            # Every run is scored on the same folds, so the change is paired fold by fold.
            change = values - np.array([fold[metric] for fold in full])
            row[f"cv_{metric}"] = float(values.mean())
            row[f"{metric}_change"] = float(change.mean())
            row[f"{metric}_change_std"] = float(change.std())
        rows.append(row)
    table = pd.DataFrame(rows)
    removals = table[table["removed"] != NOTHING_REMOVED].sort_values("roc_auc_ovr_change")
    return pd.concat([table[table["removed"] == NOTHING_REMOVED], removals]).round(6)


def ablation_figure(table: pd.DataFrame) -> Figure:
    """Bars of the change in CV ROC AUC when each feature group is removed, with fold spread."""
    removals = table[table["removed"] != NOTHING_REMOVED].iloc[::-1]
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(removals) + 1.5))
    colours = ["tab:red" if change < 0 else "tab:grey" for change in removals["roc_auc_ovr_change"]]
    axes.barh(
        removals["removed"],
        removals["roc_auc_ovr_change"],
        xerr=removals["roc_auc_ovr_change_std"],
        color=colours,
        capsize=3,
    )
    axes.axvline(0, color="black", linewidth=0.8)
    full_score = float(table.loc[table["removed"] == NOTHING_REMOVED, "cv_roc_auc_ovr"].iloc[0])
    axes.set_xlabel(f"change in CV ROC AUC when removed (all features: {full_score:.4f})")
    axes.set_title("What each feature group earns (red: the model needs it)")
    figure.tight_layout()
    return figure
