"""The served model compiled to NumPy and numba: the same probabilities, bit for bit, faster.

The logged model is a scikit-learn Pipeline (ListingFeatures → one-hot → classifier), or a
FieldRouter over such Pipelines, which picks one per listing by the fields it carries. Run as
is, one listing costs about 20 ms, nearly all of it per-call overhead: pandas frames for one
row, the ColumnTransformer's checks, and one Cython call per tree (hundreds of them). Here
the same fitted parameters are laid out as flat arrays once, at load time; a request runs a
few NumPy operations and one compiled loop (numba) that walks every tree. Every step repeats
the Pipeline's arithmetic in the same order (features through the shared `engineer_features`,
leaf values summed tree by tree as scikit-learn does, its own softmax for gradient boosting,
float32 inputs for a forest, `np.mean` for a soft vote, the router's own choice of member),
so the result is identical, not merely close; tests/unit/test_compiled.py checks that with
`np.array_equal`.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numba
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from sklearn.tree._tree import TREE_LEAF

from mlops_lab.kernel.blend import SoftVoteClassifier
from mlops_lab.kernel.decision import decision_weights, probability_model
from mlops_lab.kernel.features import (
    Columns,
    ListingFeatures,
    conform_records,
    engineer_features,
    present_fields,
)
from mlops_lab.kernel.routing import FieldRouter, route_listings


# One compiled loop over trees then listings (a tree's nodes stay in cache while every listing
# passes), which adds each tree's leaf value to the listings' sums as it goes: the same
# additions in the same order as scikit-learn, with no (listings × trees) array in between.
# Measured on the tuned champion (1,124 trees), one thread, in ms: 1 listing 0.06 (a NumPy
# walk 0.34, scikit-learn 7.1); 100 listings 9.2 (27.9, 26.7); 1,000 listings 67 (270, 68).
# The comparisons are scikit-learn's own: `x <= threshold`, and NaN goes the side the tree
# learnt for missing values.
# cache: each service worker, and each restart, loads the compiled loop instead of spending
# about 1.5 s compiling it again (NUMBA_CACHE_DIR moves the cache if the package is read-only).
@numba.njit(nogil=True, cache=True)
def _add_leaf_values(
    encoded: np.ndarray,
    first_row: int,
    end_row: int,
    roots: np.ndarray,
    nodes: np.ndarray,
    value: np.ndarray,
    column_of_tree: np.ndarray,
    sums: np.ndarray,
) -> None:
    for tree in range(roots.shape[0]):
        column = column_of_tree[tree]
        for row in range(first_row, end_row):
            node = nodes[roots[tree]]
            index = roots[tree]
            while node.split >= 0:
                x = encoded[row, node.split >> 1]
                go_left = (node.split & 1) == 1 if np.isnan(x) else x <= node.threshold
                index = node.left if go_left else node.right
                node = nodes[index]
            for offset in range(value.shape[1]):
                sums[row, column + offset] += value[index, offset]


# Rows per block of the parallel loop: enough for a tree's nodes to pay for their trip into
# the cache, few enough for two cores to share a few thousand listings evenly.
ROWS_PER_BLOCK = 256


# The same loop, blocks of listings spread over numba's threads. A listing's sums are still
# added by one thread, in tree order, so the result is the same to the last bit. Only for
# work that owns the process (explaining a test sample): the service's threads would contend
# for numba's thread pool, so it compiles its models serial.
@numba.njit(nogil=True, cache=True, parallel=True)
def _add_leaf_values_in_parallel(encoded: np.ndarray, arrays: tuple) -> None:
    rows = encoded.shape[0]
    for block in numba.prange((rows + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK):
        first_row = block * ROWS_PER_BLOCK
        _add_leaf_values(encoded, first_row, min(first_row + ROWS_PER_BLOCK, rows), *arrays)


# Rows a thread of the caller's pool takes at least (see NodeTable.threads): below this, handing
# work to another thread (about 60 µs there and back) costs more than it saves.
ROWS_PER_THREAD = 128


def row_ranges(rows: int, parts: int) -> list[tuple[int, int]]:
    """`rows` cut into at most `parts` contiguous ranges of at least ROWS_PER_THREAD rows."""
    parts = max(1, min(parts, rows // ROWS_PER_THREAD))
    bounds = [rows * part // parts for part in range(parts + 1)]
    return list(pairwise(bounds))


@dataclass(frozen=True)
class RowThreads:
    """Threads to spread a large batch's rows over: the caller's and `count - 1` of `pool`'s."""

    pool: Executor
    count: int


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


# One node as one record, so a step down a tree reads one cache line instead of one per field
# (six arrays): one listing's walk through the champion's 996 boosting trees is bound by those
# reads, and took 0.045 ms instead of 0.069 (batches gain nothing: their trees stay in cache).
# `split` is the feature's column times two plus 1 if missing values go left, or -1 for a leaf.
NODE = np.dtype(
    [("threshold", np.float64), ("split", np.int32), ("left", np.int32), ("right", np.int32)],
    align=True,
)


def packed_nodes(
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_go_left: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    is_leaf: np.ndarray,
) -> np.ndarray:
    """The nodes' fields as one NODE record per node."""
    nodes = np.zeros(len(feature), dtype=NODE)
    nodes["threshold"] = threshold
    nodes["split"] = np.where(is_leaf, -1, feature * 2 + missing_go_left)
    nodes["left"] = np.where(is_leaf, -1, left)
    nodes["right"] = np.where(is_leaf, -1, right)
    return nodes


@dataclass(frozen=True)
class NodeTable:
    """Every tree of an ensemble as one flat table of NODE records; `roots` holds each tree's
    first node."""

    nodes: np.ndarray
    roots: np.ndarray
    # Spread large batches over numba's threads (see _add_leaf_values_in_parallel).
    parallel: bool = False
    # Or over this pool's threads and the caller's: the service's, whose request threads
    # must not share numba's pool. The compiled loop releases the GIL, so a 1,000-listing
    # batch uses every core while the other workers are idle.
    threads: RowThreads | None = None

    def add_leaf_values(
        self, encoded: np.ndarray, value: np.ndarray, column_of_tree: np.ndarray, sums: np.ndarray
    ) -> None:
        """Add to `sums[listing, column_of_tree[tree] + j]` the `value[leaf, j]` of the leaf each
        listing reaches in each tree, trees in order."""
        arrays = (
            self.roots,
            self.nodes,
            value,
            column_of_tree,
            sums,
        )
        encoded = np.ascontiguousarray(encoded, dtype=np.float64)
        if self.parallel and len(encoded) > ROWS_PER_BLOCK:
            _add_leaf_values_in_parallel(encoded, arrays)
            return
        if self.threads is None:
            _add_leaf_values(encoded, 0, len(encoded), *arrays)
            return
        # Each range's rows are summed by one thread, tree by tree: the same bits as one call.
        *handed_over, (first_row, end_row) = row_ranges(len(encoded), self.threads.count)
        pending = [
            self.threads.pool.submit(_add_leaf_values, encoded, start, end, *arrays)
            for start, end in handed_over
        ]
        _add_leaf_values(encoded, first_row, end_row, *arrays)
        for part in pending:
            part.result()


@dataclass(frozen=True)
class BoostedTrees:
    """A HistGradientBoostingClassifier: per-class leaf values summed, then its softmax."""

    nodes: NodeTable
    # Each node's value, shape (nodes, 1).
    value: np.ndarray
    # The class (column of the raw predictions) each tree adds to.
    class_of_tree: np.ndarray
    baseline: np.ndarray
    # scikit-learn's own loss object, so the softmax matches to the last bit.
    loss: Any

    def raw_predictions(self, encoded: np.ndarray) -> np.ndarray:
        """Baseline plus each tree's leaf value, added in boosting order per class, like
        scikit-learn's `raw[:, k] += tree(X)`."""
        raw = np.repeat(self.baseline[None, :], len(encoded), axis=0)
        self.nodes.add_leaf_values(encoded, self.value, self.class_of_tree, raw)
        return raw

    def predict_proba(self, encoded: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in the classifier's class order."""
        return self.loss.predict_proba(self.raw_predictions(encoded))


@dataclass(frozen=True)
class ForestTrees:
    """A RandomForestClassifier: the mean over trees of each leaf's class fractions."""

    nodes: NodeTable
    # Each node's class fractions, shape (nodes, classes).
    value: np.ndarray
    # Where each tree's fractions are added: every tree from the first class's column on.
    column_of_tree: np.ndarray

    def predict_proba(self, encoded: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in the classifier's class order."""
        # A forest compares float32 copies of the features with its thresholds.
        as_float32 = encoded.astype(np.float32).astype(np.float64)
        sums = np.zeros((len(encoded), self.value.shape[1]))
        # Added tree by tree in order, as a one-thread forest does, then divided once.
        self.nodes.add_leaf_values(as_float32, self.value, self.column_of_tree, sums)
        return sums / len(self.nodes.roots)


@dataclass(frozen=True)
class SoftVote:
    """A SoftVoteClassifier: the mean of its compiled members' probabilities."""

    members: tuple[Any, ...]

    def predict_proba(self, encoded: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in the classifier's class order."""
        return np.mean(
            np.asarray([member.predict_proba(encoded) for member in self.members]), axis=0
        )


@dataclass(frozen=True)
class FittedClassifier:
    """A classifier the compiler does not lay out: scikit-learn predicts on the encoded matrix."""

    classifier: Any

    def predict_proba(self, encoded: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in the classifier's class order."""
        return self.classifier.predict_proba(encoded)


CompiledClassifier = BoostedTrees | ForestTrees | SoftVote | FittedClassifier


@dataclass(frozen=True)
class CompiledPipeline:
    """Class probabilities for listings, identical to Pipeline.predict_proba, and the weights
    its decision step labels them with."""

    feature_names: tuple[str, ...]
    encoding: Encoding
    classes: np.ndarray
    classifier: CompiledClassifier
    # The decision step's label weights (ones: the most probable category).
    weights: np.ndarray

    def answer_columns(self, listings: Columns) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and label weights per listing, columns in `classes` order."""
        features = engineer_features(listings)
        encoded = self.encoding.encode({name: features[name] for name in self.feature_names})
        probabilities = self.classifier.predict_proba(encoded)
        return probabilities, np.broadcast_to(self.weights, probabilities.shape)

    def predict_proba(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Probabilities per listing dict, columns in `classes` order."""
        return self.answer_columns(conform_records(records))[0]


@dataclass(frozen=True)
class CompiledRouter:
    """A FieldRouter: each listing answered by the compiled member that the router picks."""

    routes: tuple[tuple[tuple[str, ...], CompiledPipeline], ...]
    classes: np.ndarray

    def answer_columns(self, listings: Columns) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and label weights per listing, columns in `classes` order."""
        chosen = route_listings(present_fields(listings), [fields for fields, _ in self.routes])
        if len(chosen) and (chosen == chosen[0]).all():
            # One route for all (one listing, say): no splitting and joining of rows.
            return self.routes[chosen[0]][1].answer_columns(listings)
        rows = len(chosen)
        probabilities = np.empty((rows, len(self.classes)))
        weights = np.empty((rows, len(self.classes)))
        for position, (_, member) in enumerate(self.routes):
            taken = chosen == position
            if taken.any():
                subset = {name: values[taken] for name, values in listings.items()}
                probabilities[taken], weights[taken] = member.answer_columns(subset)
        return probabilities, weights

    def predict_proba(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Probabilities per listing dict, columns in `classes` order."""
        return self.answer_columns(conform_records(records))[0]


CompiledModel = CompiledPipeline | CompiledRouter


def compile_encoding(encode: ColumnTransformer) -> Encoding:
    """The layout of a fitted ColumnTransformer of one-hot and passthrough blocks."""
    blocks: list[tuple[str, np.ndarray | None]] = []
    for name, transformer, columns in encode.transformers_:
        # A block with no columns (a model on numbers only has no one-hot) is never fitted.
        if (name == "remainder" and transformer == "drop") or len(columns) == 0:
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


def compile_boosting(
    classifier: HistGradientBoostingClassifier, parallel: bool, threads: RowThreads | None
) -> BoostedTrees:
    """One node table for all of a fitted HistGradientBoostingClassifier's trees."""
    if classifier.is_categorical_ is not None and classifier.is_categorical_.any():
        raise UnsupportedModel("native categorical splits are not compiled")
    tables, classes_of_trees = [], []
    for iteration in classifier._predictors:
        for k, predictor in enumerate(iteration):
            tables.append(predictor.nodes)
            classes_of_trees.append(k)
    nodes = np.concatenate(tables)
    roots, starts = _roots_and_starts([len(table) for table in tables])
    classes_of_trees = np.asarray(classes_of_trees)
    return BoostedTrees(
        nodes=NodeTable(
            nodes=packed_nodes(
                feature=nodes["feature_idx"].astype(np.intp),
                threshold=nodes["num_threshold"].astype(np.float64),
                missing_go_left=nodes["missing_go_to_left"].astype(bool),
                left=(nodes["left"] + starts).astype(np.intp),
                right=(nodes["right"] + starts).astype(np.intp),
                is_leaf=nodes["is_leaf"].astype(bool),
            ),
            roots=roots,
            parallel=parallel,
            threads=threads,
        ),
        value=nodes["value"].astype(np.float64).reshape(-1, 1),
        class_of_tree=classes_of_trees.astype(np.intp),
        baseline=np.asarray(classifier._baseline_prediction, dtype=np.float64).reshape(-1),
        loss=classifier._loss,
    )


def compile_forest(
    classifier: RandomForestClassifier, parallel: bool, threads: RowThreads | None
) -> ForestTrees:
    """One node table for all of a fitted single-output RandomForestClassifier's trees."""
    if classifier.n_outputs_ != 1:
        raise UnsupportedModel("only single-output forests are compiled")
    trees = [estimator.tree_ for estimator in classifier.estimators_]
    roots, starts = _roots_and_starts([tree.node_count for tree in trees])
    left = np.concatenate([tree.children_left for tree in trees])
    right = np.concatenate([tree.children_right for tree in trees])
    is_leaf = left == TREE_LEAF
    return ForestTrees(
        nodes=NodeTable(
            nodes=packed_nodes(
                feature=np.concatenate([tree.feature for tree in trees]).astype(np.intp),
                threshold=np.concatenate([tree.threshold for tree in trees]).astype(np.float64),
                missing_go_left=np.concatenate([tree.missing_go_to_left for tree in trees]).astype(
                    bool
                ),
                left=left + starts,
                right=right + starts,
                is_leaf=is_leaf,
            ),
            roots=roots,
            parallel=parallel,
            threads=threads,
        ),
        value=np.concatenate([tree.value[:, 0, :] for tree in trees]).astype(np.float64),
        column_of_tree=np.zeros(len(trees), dtype=np.intp),
    )


def _roots_and_starts(sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each tree's first row in the concatenated table, and that offset repeated per node."""
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    return roots, np.repeat(roots, sizes)


def compile_classifier(
    classifier: Any, parallel: bool, threads: RowThreads | None
) -> CompiledClassifier:
    """The fitted classifier's probability arithmetic as arrays, where the compiler knows it."""
    if isinstance(classifier, HistGradientBoostingClassifier):
        return compile_boosting(classifier, parallel, threads)
    if isinstance(classifier, RandomForestClassifier):
        return compile_forest(classifier, parallel, threads)
    if isinstance(classifier, SoftVoteClassifier):
        return SoftVote(
            tuple(
                compile_classifier(member, parallel, threads) for member in classifier.estimators_
            )
        )
    return FittedClassifier(classifier)


def compile_pipeline(
    pipeline: Pipeline, parallel: bool = False, threads: RowThreads | None = None
) -> CompiledPipeline:
    """The fitted Pipeline as NumPy arrays; UnsupportedModel if its structure is unknown."""
    if len(pipeline.steps) != 3:
        raise UnsupportedModel(f"expected 3 steps, found {[name for name, _ in pipeline.steps]}")
    features, encode, last_step = (step for _, step in pipeline.steps)
    # A decision step changes only labels: its weights apply to the compiled probabilities.
    classifier = probability_model(last_step)
    if not isinstance(features, ListingFeatures) or not isinstance(encode, ColumnTransformer):
        raise UnsupportedModel("expected ListingFeatures then a ColumnTransformer")
    return CompiledPipeline(
        feature_names=tuple(features.features),
        encoding=compile_encoding(encode),
        classes=np.asarray(classifier.classes_),
        classifier=compile_classifier(classifier, parallel, threads),
        weights=np.asarray(decision_weights(last_step), dtype=np.float64),
    )


def compile_model(
    model: Pipeline | FieldRouter, parallel: bool = False, threads: RowThreads | None = None
) -> CompiledModel:
    """The fitted model as NumPy arrays; UnsupportedModel if its structure is unknown. With
    `parallel`, large batches use every core numba has (never in the service's threads); with
    `threads`, they are spread over those instead."""
    if isinstance(model, FieldRouter):
        return CompiledRouter(
            routes=tuple(
                (tuple(fields), compile_pipeline(member, parallel, threads))
                for _, fields, member in model.routes_
            ),
            classes=np.asarray(model.classes_),
        )
    if not isinstance(model, Pipeline):
        raise UnsupportedModel(f"expected a Pipeline or a FieldRouter, got {type(model).__name__}")
    return compile_pipeline(model, parallel, threads)
