"""The served Pipeline compiled to NumPy and numba: the same probabilities, bit for bit, faster.

The logged model is a scikit-learn Pipeline (ListingFeatures → one-hot → classifier). Run as
is, one listing costs about 20 ms, nearly all of it per-call overhead: pandas frames for one
row, the ColumnTransformer's checks, and one Cython call per tree (hundreds of them). Here
the same fitted parameters are laid out as flat arrays once, at load time; a request runs a
few NumPy operations and one compiled loop (numba) that walks every tree. Every step repeats
the Pipeline's arithmetic in the same order (features through the shared `engineer_features`,
leaf values summed tree by tree as scikit-learn does, scikit-learn's own softmax), so the
result is identical, not merely close; tests/unit/prediction_app/test_compiled.py checks that
with `np.array_equal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from mlops_lab.decision import probability_model
from mlops_lab.features import Columns, ListingFeatures, conform_records, engineer_features


# One compiled loop over trees then listings (a tree's nodes stay in cache while every listing
# passes). Measured on the tuned champion (1,124 trees), one thread, in ms: 1 listing 0.06
# (the NumPy walk it replaced 0.34, scikit-learn 7.1); 100 listings 9.2 (27.9, 26.7); 1,000
# listings 67 (270, 68). The comparisons are scikit-learn's own: `x <= threshold`, and NaN
# goes the side the tree learnt for missing values.
@numba.njit(nogil=True)
def _walk_to_leaves(
    encoded: np.ndarray,
    roots: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_go_left: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    is_leaf: np.ndarray,
    leaves: np.ndarray,
) -> None:
    for tree in range(roots.shape[0]):
        for row in range(encoded.shape[0]):
            node = roots[tree]
            while not is_leaf[node]:
                value = encoded[row, feature[node]]
                go_left = missing_go_left[node] if np.isnan(value) else value <= threshold[node]
                node = left[node] if go_left else right[node]
            leaves[row, tree] = node


class UnsupportedModel(ValueError):
    """A fitted Pipeline whose structure the compiler does not know."""


@dataclass(frozen=True)
class Encoding:
    """How the ColumnTransformer lays features out: per output block, a one-hot or a number."""

    # (feature name, its categories) for a one-hot block; (feature name, None) for a number.
    blocks: tuple[tuple[str, np.ndarray | None], ...]
    width: int

    def encode(self, features: Columns) -> np.ndarray:
        """The matrix the classifier takes, from named feature arrays."""
        rows = len(next(iter(features.values())))
        encoded = np.empty((rows, self.width), dtype=np.float64)
        column = 0
        for name, categories in self.blocks:
            if categories is None:
                encoded[:, column] = features[name]
                column += 1
                continue
            # Unknown categories match nothing: all zeros, as handle_unknown="ignore" does.
            encoded[:, column : column + len(categories)] = (
                features[name][:, None] == categories[None, :]
            )
            column += len(categories)
        return encoded


@dataclass(frozen=True)
class TreeEnsemble:
    """Every tree of a HistGradientBoostingClassifier as one flat node table."""

    feature: np.ndarray
    threshold: np.ndarray
    missing_go_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    # For each class, its trees' positions in `roots`, in boosting order.
    trees_of_class: tuple[np.ndarray, ...]
    baseline: np.ndarray

    def leaves(self, encoded: np.ndarray) -> np.ndarray:
        """The leaf each listing reaches in each tree, shape (listings, trees)."""
        leaves = np.empty((len(encoded), len(self.roots)), dtype=np.intp)
        _walk_to_leaves(
            np.ascontiguousarray(encoded, dtype=np.float64),
            self.roots,
            self.feature,
            self.threshold,
            self.missing_go_left,
            self.left,
            self.right,
            self.is_leaf,
            leaves,
        )
        return leaves

    def raw_predictions(self, encoded: np.ndarray) -> np.ndarray:
        """Baseline plus each tree's leaf value, summed in boosting order per class."""
        leaf_values = self.value[self.leaves(encoded)]
        raw = np.empty((len(encoded), len(self.trees_of_class)), dtype=np.float64)
        for k, trees in enumerate(self.trees_of_class):
            # cumsum adds strictly left to right, like scikit-learn's `raw[:, k] += tree(X)`;
            # a plain sum would add pairwise and round differently.
            terms = np.column_stack(
                [np.full(len(encoded), self.baseline[k]), leaf_values[:, trees]]
            )
            raw[:, k] = np.cumsum(terms, axis=1)[:, -1]
        return raw


@dataclass(frozen=True)
class CompiledModel:
    """Class probabilities for validated listing dicts, identical to Pipeline.predict_proba."""

    feature_names: tuple[str, ...]
    encoding: Encoding
    classes: np.ndarray
    trees: TreeEnsemble | None
    classifier: Any

    def predict_proba(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Probabilities per listing, columns in `classes` order."""
        features = engineer_features(conform_records(records))
        encoded = self.encoding.encode({name: features[name] for name in self.feature_names})
        if self.trees is None:
            return self.classifier.predict_proba(encoded)
        # scikit-learn's own softmax, so the last bit matches too.
        return self.classifier._loss.predict_proba(self.trees.raw_predictions(encoded))


def compile_encoding(encode: ColumnTransformer) -> Encoding:
    """The layout of a fitted ColumnTransformer of one-hot and passthrough blocks."""
    blocks: list[tuple[str, np.ndarray | None]] = []
    for name, transformer, columns in encode.transformers_:
        if name == "remainder" and transformer == "drop":
            continue
        if _passthrough(transformer):
            blocks.extend((column, None) for column in columns)
        elif isinstance(transformer, OneHotEncoder) and _plain_one_hot(transformer):
            for column, categories in zip(columns, transformer.categories_, strict=True):
                blocks.append((column, np.asarray(categories, dtype=object)))
        else:
            raise UnsupportedModel(f"cannot compile the {name!r} block ({transformer!r})")
    width = sum(1 if categories is None else len(categories) for _, categories in blocks)
    return Encoding(tuple(blocks), width)


def _passthrough(transformer: object) -> bool:
    """Whether a fitted block copies its columns (fitting turns "passthrough" into an identity)."""
    return transformer == "passthrough" or (
        isinstance(transformer, FunctionTransformer) and transformer.func is None
    )


def _plain_one_hot(encoder: OneHotEncoder) -> bool:
    """Whether a one-hot encoder is dense, drops nothing and groups no infrequent categories."""
    return (
        encoder.handle_unknown == "ignore"
        and encoder.drop is None
        and encoder.min_frequency is None
        and encoder.max_categories is None
        and not encoder.sparse_output
    )


def compile_trees(classifier: HistGradientBoostingClassifier) -> TreeEnsemble:
    """One node table for all of a fitted HistGradientBoostingClassifier's trees."""
    if classifier.is_categorical_ is not None and classifier.is_categorical_.any():
        raise UnsupportedModel("native categorical splits are not compiled")
    tables, roots, classes_of_trees, offset = [], [], [], 0
    for iteration in classifier._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            tables.append(nodes)
            roots.append(offset)
            classes_of_trees.append(k)
            offset += len(nodes)
    nodes = np.concatenate(tables)
    starts = np.repeat(np.asarray(roots), [len(table) for table in tables])
    is_leaf = nodes["is_leaf"].astype(bool)
    classes_of_trees = np.asarray(classes_of_trees)
    return TreeEnsemble(
        feature=nodes["feature_idx"].astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_go_left=nodes["missing_go_to_left"].astype(bool),
        left=(nodes["left"] + starts).astype(np.intp),
        right=(nodes["right"] + starts).astype(np.intp),
        is_leaf=is_leaf,
        value=nodes["value"].astype(np.float64),
        roots=np.asarray(roots, dtype=np.intp),
        trees_of_class=tuple(
            np.flatnonzero(classes_of_trees == k) for k in range(classifier.n_trees_per_iteration_)
        ),
        baseline=np.asarray(classifier._baseline_prediction, dtype=np.float64).reshape(-1),
    )


def compile_model(pipeline: Pipeline) -> CompiledModel:
    """The fitted Pipeline as NumPy arrays; UnsupportedModel if its structure is unknown."""
    if len(pipeline.steps) != 3:
        raise UnsupportedModel(f"expected 3 steps, found {[name for name, _ in pipeline.steps]}")
    features, encode, last_step = (step for _, step in pipeline.steps)
    # A decision step changes only labels, which the service computes from the probabilities.
    classifier = probability_model(last_step)
    if not isinstance(features, ListingFeatures) or not isinstance(encode, ColumnTransformer):
        raise UnsupportedModel("expected ListingFeatures then a ColumnTransformer")
    trees = (
        compile_trees(classifier)
        if isinstance(classifier, HistGradientBoostingClassifier)
        else None
    )
    return CompiledModel(
        feature_names=tuple(features.features),
        encoding=compile_encoding(encode),
        classes=np.asarray(classifier.classes_),
        trees=trees,
        classifier=classifier,
    )
