"""A random forest the web tier evaluates without a JVM.

Spark saves a RandomForestClassificationModel as parquet: one row per node with its split
and its class counts (`impurityStats`). The training job reads that node table back through
Spark (`write_spark_model` in pipeline/train.py) and `Forest.from_trees` flattens every tree
into shared numpy arrays; the artifact keeps them as `to_bytes` wrote them, and the web tier
loads them with `from_bytes`. `Forest.predict_proba` walks all trees at once, one level per
step. Spark's probability is the sum over trees of each leaf's normalised class counts, normalised
again; continuous splits send `x[feature] <= threshold` left. Reproducing that exactly is what
the parity test checks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class _Walk:
    """The node arrays predict_proba indexes with, as platform-sized integers (no cast on each gather)."""

    feature: np.ndarray
    children: np.ndarray  # node * 2 -> right child, node * 2 + 1 -> left child
    roots: np.ndarray


@dataclass(frozen=True)
class Forest:
    feature: np.ndarray  # int32 per node; leaves point at feature 0
    threshold: np.ndarray  # float64 per node; +inf at leaves so that they loop onto themselves
    left: np.ndarray  # int32 global node index
    right: np.ndarray
    leaf_value: np.ndarray  # (nodes, classes): normalised class counts, zero for inner nodes
    roots: np.ndarray  # int32 global index of each tree's root
    depth: int

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_classes(self) -> int:
        return int(self.leaf_value.shape[1])

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Class probabilities for a (n_rows, n_features) array or one feature vector."""
        single = rows.ndim == 1
        x = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        n_rows, n_trees = len(x), self.n_trees
        walk = self._walk
        # flat indexing into one row-major copy of x and one (right, left) child table keeps each level at four
        # gathers; going left when x <= threshold (and right for NaN) is exactly Spark's rule
        node = np.tile(walk.roots, n_rows)
        row_start = np.repeat(np.arange(n_rows, dtype=np.intp) * x.shape[1], n_trees)
        values = x.ravel()
        for _ in range(self.depth):
            node = walk.children[2 * node + (values[row_start + walk.feature[node]] <= self.threshold[node])]
        votes = self.leaf_value[node].reshape(n_rows, n_trees, -1).sum(axis=1)
        probabilities = votes / votes.sum(axis=1, keepdims=True)
        return probabilities[0] if single else probabilities

    @cached_property
    def _walk(self) -> _Walk:
        children = np.stack([self.right, self.left], axis=1).ravel().astype(np.intp)
        return _Walk(self.feature.astype(np.intp), children, self.roots.astype(np.intp))

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, feature=self.feature, threshold=self.threshold, left=self.left,
                            right=self.right, leaf_value=self.leaf_value, roots=self.roots,
                            depth=np.array(self.depth))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Forest:
        with np.load(io.BytesIO(data)) as arrays:
            return cls(arrays["feature"], arrays["threshold"], arrays["left"], arrays["right"],
                       arrays["leaf_value"], arrays["roots"], int(arrays["depth"]))

    @classmethod
    def from_trees(cls, trees: list[list[dict]]) -> Forest:
        feature, threshold, left, right, values, roots = [], [], [], [], [], []
        depth = 0
        for nodes in trees:
            offset = len(feature)
            by_id = {int(n["id"]): n for n in nodes}
            local = {node_id: offset + i for i, node_id in enumerate(sorted(by_id))}
            roots.append(local[0])
            for node_id in sorted(by_id):
                _append_node(by_id[node_id], local, feature, threshold, left, right, values)
            depth = max(depth, _depth(by_id, 0))
        return cls(np.array(feature, np.int32), np.array(threshold, np.float64),
                   np.array(left, np.int32), np.array(right, np.int32),
                   np.array(values, np.float64), np.array(roots, np.int32), depth)


def _append_node(node: dict, local: dict[int, int], feature: list, threshold: list, left: list,
                 right: list, values: list) -> None:
    me = local[int(node["id"])]
    stats = np.asarray(node["impurityStats"], dtype=np.float64)
    if int(node["leftChild"]) < 0:  # a leaf
        feature.append(0)
        threshold.append(np.inf)
        left.append(me)
        right.append(me)
        total = stats.sum()
        values.append(stats / total if total else np.zeros_like(stats))
        return
    split = node["split"]
    if int(split["numCategories"]) != -1:
        raise ValueError("categorical splits are not supported: every feature is continuous")
    feature.append(int(split["featureIndex"]))
    threshold.append(float(split["leftCategoriesOrThreshold"][0]))
    left.append(local[int(node["leftChild"])])
    right.append(local[int(node["rightChild"])])
    values.append(np.zeros_like(stats))


def _depth(by_id: dict[int, dict], node_id: int) -> int:
    depth, frontier = 0, [node_id]
    while True:
        children = [c for n in frontier for c in (int(by_id[n]["leftChild"]), int(by_id[n]["rightChild"])) if c >= 0]
        if not children:
            return depth
        depth, frontier = depth + 1, children
