"""Exact fast evaluation of a fitted XGBoost joint model for one device at a time.

The joint model's inputs are ``[device embedding, architecture encoding]``; for one device the
embedding is constant, so every split on it is decided once (:meth:`TreeArrays.specialise`),
leaving trees over the architecture encoding only. Those are evaluated in two ways, both equal
to XGBoost's own prediction (same float32 comparisons, missing values follow each split's
default direction, leaves summed in float32 in tree order onto ``base_score``):

- few rows (single calls, the first call after ``adapt``): numpy walks all trees at once,
  one vectorised step per depth level (:meth:`SpecialisedTrees.predict`);
- many rows, large ensembles: the specialised trees are written back as an XGBoost model
  (fewer nodes, no embedding columns to build) and predicted by XGBoost's C++ predictor, in
  chunks; small ensembles keep the full booster (see :data:`BOOSTER_MIN_NODES`).

This is derived state: rebuilt from the booster when needed, never written to model files.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

__all__ = ["TreeArrays", "SpecialisedTrees", "FastJoint"]
if TYPE_CHECKING:
    from edgeperf.predictors._fastcodes import LeafMasks

#: Up to this many rows are walked in numpy; more go to the specialised XGBoost model.
NUMPY_MAX_ROWS = 256
#: A batch this large builds the specialised XGBoost model (about as costly as predicting it).
BOOSTER_MIN_ROWS = 20_000
#: Boosters with fewer nodes than this predict big batches as fast in full as specialised (their
#: nodes stay in the caches: 200 trees of depth 8, FBNet, 0.9x), larger ones slower (800 trees:
#: the specialised model 1.3-1.8x faster), so only these are specialised for big batches.
BOOSTER_MIN_NODES = 200_000
#: Device embeddings whose specialised trees are kept (training devices, signature strategies;
#: a few MB each for 800 trees of depth 8).
MAX_EMBEDDINGS = 32
#: Combined walks kept (one per set of basis devices that adapted devices use).
MAX_WALKS = 16
#: Rows per XGBoost call on the batched path (bounds the float32 copy of the input).
BATCH_CHUNK_ROWS = 1 << 17


class TreeArrays:
    """The nodes of every tree of an XGBoost regression booster, as flat numpy arrays."""

    def __init__(self, booster):
        model = read_ubjson(bytes(booster.save_raw("ubj")))  # binary: 5x faster to read than its JSON
        learner = model["learner"]
        self.n_jobs = int(json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] or 1)
        if learner["objective"]["name"] != "reg:squarederror":
            raise ValueError(f"expected a reg:squarederror booster, got {learner['objective']['name']!r}")
        params = learner["learner_model_param"]
        if int(params.get("num_target", "1")) != 1 or learner["gradient_booster"]["name"] != "gbtree":
            raise ValueError("expected a single-target gbtree booster")
        self.base_score = np.float32(np.asarray(json.loads(params["base_score"]), dtype=np.float32).ravel()[0])
        self.n_features = int(params["num_feature"])
        trees = learner["gradient_booster"]["model"]["trees"]
        sizes = np.array([len(t["left_children"]) for t in trees], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        cat = lambda key, dtype: np.concatenate([np.asarray(t[key], dtype=dtype) for t in trees])  # noqa: E731
        if any(any(t["split_type"]) for t in trees):
            raise ValueError("categorical splits are not supported by the fast path")
        left, right = cat("left_children", np.int64), cat("right_children", np.int64)
        self.is_leaf = left == -1
        node_offset = np.repeat(offsets, sizes)
        own = np.arange(left.size)
        self.left = np.where(self.is_leaf, own, left + node_offset)
        self.right = np.where(self.is_leaf, own, right + node_offset)
        self.feature = cat("split_indices", np.int64)
        self.condition = cat("split_conditions", np.float32)  # threshold, or the leaf value at leaves
        self.default_left = cat("default_left", np.int64).astype(bool)
        self.roots = offsets
        learner["gradient_booster"]["model"]["trees"] = []
        self.template = _plain(model)  # everything but the trees, for the specialised XGBoost models

    def specialise(self, fixed) -> "SpecialisedTrees":
        """The trees for inputs whose first ``len(fixed)`` features are ``fixed``."""
        fixed = np.asarray(fixed, dtype=np.float32)
        k = fixed.size
        decided = ~self.is_leaf & (self.feature < k)
        value = fixed[np.where(decided, self.feature, 0)]
        go_left = np.where(np.isnan(value), self.default_left, value < self.condition)
        skip = np.arange(self.left.size)
        skip[decided] = np.where(go_left, self.left, self.right)[decided]
        while True:  # pointer jumping: each decided node points past every decided node below it
            nxt = skip[skip]
            if np.array_equal(nxt, skip):
                break
            skip = nxt
        return SpecialisedTrees(self, skip, k)


#: UBJSON scalar markers and their big-endian numpy types.
_UBJ_TYPES = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}


def read_ubjson(buf: bytes):
    """Decode the UBJSON that XGBoost's ``save_raw("ubj")`` writes; typed arrays become numpy arrays."""
    mv = memoryview(buf)
    pos = 0

    def marker() -> bytes:
        nonlocal pos
        pos += 1
        return bytes(mv[pos - 1 : pos])

    def scalar(kind: bytes):
        nonlocal pos
        dtype = np.dtype(_UBJ_TYPES[kind])
        pos += dtype.itemsize
        return np.frombuffer(mv, dtype, 1, pos - dtype.itemsize)[0].item()

    def text() -> str:
        nonlocal pos
        n = int(scalar(marker()))
        pos += n
        return bytes(mv[pos - n : pos]).decode()

    def value(kind: bytes):
        nonlocal pos
        if kind in _UBJ_TYPES:
            return scalar(kind)
        if kind in (b"T", b"F", b"Z"):
            return {b"T": True, b"F": False, b"Z": None}[kind]
        if kind == b"S":
            return text()
        if kind == b"{":
            out = {}
            while bytes(mv[pos : pos + 1]) != b"}":
                key = text()
                out[key] = value(marker())
            pos += 1
            return out
        if kind == b"[":
            if bytes(mv[pos : pos + 1]) == b"$":  # typed array: "$" type "#" count, then the raw values
                pos += 1
                dtype = np.dtype(_UBJ_TYPES[marker()])
                if marker() != b"#":
                    raise ValueError("UBJSON typed array without a count")
                n = int(scalar(marker()))
                pos += n * dtype.itemsize
                return np.frombuffer(mv, dtype, n, pos - n * dtype.itemsize)
            if bytes(mv[pos : pos + 1]) == b"#":
                pos += 1
                return [value(marker()) for _ in range(int(scalar(marker())))]
            out = []
            while (kind := marker()) != b"]":
                out.append(value(kind))
            return out
        raise ValueError(f"unexpected UBJSON marker {kind!r} at byte {pos - 1}")

    return value(marker())


def _plain(obj):
    """``obj`` with numpy arrays as lists (JSON-ready)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


class SpecialisedTrees:
    """Trees over the features after the fixed ones; ``predict(X)`` equals the booster's output."""

    def __init__(self, trees: TreeArrays, skip: np.ndarray, k: int):
        roots = skip[trees.roots]
        # Reachable nodes in breadth-first order, a left child always followed by its sibling
        # (XGBoost's predictor takes the right child as left + 1), grouped by tree.
        left, right = skip[trees.left], skip[trees.right]
        frontier, seen = roots, [roots]
        depth = 0
        while True:
            inner = frontier[~trees.is_leaf[frontier]]
            if inner.size == 0:
                break
            depth += 1
            frontier = np.stack([left[inner], right[inner]], axis=1).ravel()
            seen.append(frontier)
        self.depth = depth
        nodes = np.concatenate(seen)
        tree_of = np.searchsorted(trees.roots, nodes, side="right") - 1
        nodes = nodes[np.argsort(tree_of, kind="stable")]
        remap = np.full(skip.size, -1, dtype=np.int64)
        remap[nodes] = np.arange(nodes.size)
        leaf = trees.is_leaf[nodes]
        self.roots = remap[roots]
        self.left = np.where(leaf, np.arange(nodes.size), remap[left[nodes]])
        self.right = np.where(leaf, np.arange(nodes.size), remap[right[nodes]])
        self.is_leaf = leaf
        self.feature = np.where(leaf, 0, trees.feature[nodes] - k)
        self.threshold = np.where(leaf, np.float32(np.nan), trees.condition[nodes]).astype(np.float32)
        self.default_left = trees.default_left[nodes]
        self.leaf_value = np.where(leaf, trees.condition[nodes], np.float32(0)).astype(np.float32)
        self.tree_of_node = np.sort(tree_of)
        self.base_score = trees.base_score
        self.n_features = trees.n_features - k
        self.template, self.n_jobs = trees.template, trees.n_jobs
        self._booster = None
        self._walk = None
        self.leaf_masks = None  # (blocks, LeafMasks) once a single-architecture evaluator needs them

    @property
    def n_trees(self) -> int:
        return self.roots.size

    # ---- numpy walk (few rows) ---------------------------------------------------------------
    def predict(self, X: np.ndarray) -> np.ndarray:
        """float64 predictions of the float32 rows ``X`` (n, n_features)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.shape[0] > NUMPY_MAX_ROWS:
            return self._predict_xgboost(X)
        if self._walk is None:
            self._walk = Walk([self])
        return self._walk(X)[:, 0]

    def predict_missing(self, X: np.ndarray) -> np.ndarray:
        """The walk with missing values (NaN): each split sends them its default way."""
        n = X.shape[0]
        node = np.broadcast_to(self.roots, (n, self.n_trees)).copy()
        rows = np.arange(n)[:, None] * self.n_features
        flat = X.ravel()
        for _ in range(self.depth):
            x = flat[rows + self.feature[node]]
            go_left = np.where(np.isnan(x), self.default_left[node], x < self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        return _sum_in_tree_order(self.base_score, self.leaf_value[node])

    # ---- XGBoost (many rows) -----------------------------------------------------------------
    def _predict_xgboost(self, X: np.ndarray) -> np.ndarray:
        booster = self.booster()
        out = np.empty(X.shape[0])
        for start in range(0, X.shape[0], BATCH_CHUNK_ROWS):
            chunk = X[start : start + BATCH_CHUNK_ROWS]
            out[start : start + len(chunk)] = booster.inplace_predict(chunk)
        return out

    @property
    def has_booster(self) -> bool:
        return self._booster is not None

    def booster(self):
        """The specialised trees as an XGBoost booster (built on first use)."""
        if self._booster is None:
            self._booster = _to_booster(self)
        return self._booster


class Walk:
    """All trees of several specialised ensembles walked at once in numpy, one step per depth
    level: ``walk(X)`` is ``(n, len(parts))``, column j equal to ``parts[j]``'s booster.

    Each distinct (feature, threshold) test becomes one column of 0/1 "goes right" bits, so a
    step is ``node = left[node] + bit[test[node]]`` (siblings are adjacent); leaves point at a
    last, always-0 column and stay where they are. Rows with a missing value on a tested
    feature take each part's walk with default directions instead.
    """

    def __init__(self, parts: "list[SpecialisedTrees]"):
        self.parts = parts
        offsets = np.cumsum([0] + [p.left.size for p in parts])
        self.roots = np.concatenate([p.roots + o for p, o in zip(parts, offsets)])
        left = np.concatenate([p.left + o for p, o in zip(parts, offsets)])
        feature = np.concatenate([p.feature for p in parts])
        threshold = np.concatenate([p.threshold for p in parts])
        inner = ~np.concatenate([p.is_leaf for p in parts])
        keys = feature[inner].astype(np.int64) << 32 | threshold[inner].view(np.uint32).astype(np.int64)
        tests, which = np.unique(keys, return_inverse=True)
        self.test_feature = tests >> 32
        self.test_threshold = (tests & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
        test = np.full(left.size, tests.size, dtype=np.intp)
        test[inner] = which.ravel()
        self.left, self.test = left, test
        self.leaf_value = np.concatenate([p.leaf_value for p in parts])
        self.bounds = np.cumsum([0] + [p.n_trees for p in parts])
        self.depth = max(p.depth for p in parts)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        out = np.empty((n, len(self.parts)))
        if n == 0:
            return out
        values = X[:, self.test_feature]
        if np.isnan(values).any():
            for j, part in enumerate(self.parts):
                out[:, j] = part.predict_missing(X)
            return out
        bits = np.zeros((n, self.test_feature.size + 1), dtype=np.intp)
        np.greater_equal(values, self.test_threshold, out=bits[:, :-1], casting="unsafe")
        left, test = self.left, self.test
        if n == 1:  # 1-D takes: the cheapest numpy calls for a few thousand nodes
            bits = bits[0]
            node = self.roots
            for _ in range(self.depth):
                node = left.take(node) + bits.take(test.take(node))
        else:
            flat = bits.ravel()
            offset = (np.arange(n) * bits.shape[1])[:, None]
            node = np.broadcast_to(self.roots, (n, self.roots.size))
            for _ in range(self.depth):
                node = left[node] + flat[offset + test[node]]
        leaves = self.leaf_value.take(node).reshape(n, -1)
        for j, part in enumerate(self.parts):
            out[:, j] = _sum_in_tree_order(part.base_score, leaves[:, self.bounds[j] : self.bounds[j + 1]])
        return out


def _sum_in_tree_order(base: np.float32, leaves: np.ndarray) -> np.ndarray:
    """``base + leaves[:, 0] + leaves[:, 1] + ...`` in float32, as XGBoost accumulates (a
    cumulative sum is sequential, unlike ``sum``'s pairwise order)."""
    terms = np.empty((leaves.shape[0], leaves.shape[1] + 1), dtype=np.float32)
    terms[:, 0] = base
    terms[:, 1:] = leaves
    return np.cumsum(terms, axis=1, dtype=np.float32)[:, -1]


def _to_booster(st: SpecialisedTrees):
    """An XGBoost booster of the specialised trees (same base score, float32 thresholds and leaves)."""
    import xgboost

    template = json.loads(json.dumps(st.template))  # a deep copy
    n = st.left.size
    starts = np.searchsorted(st.tree_of_node, np.arange(st.n_trees))
    start_of = starts[st.tree_of_node]
    own = np.arange(n)
    inner = ~st.is_leaf
    parent = np.full(n, 2147483647, dtype=np.int64)
    parent[st.left[inner]] = own[inner] - start_of[inner]
    parent[st.right[inner]] = own[inner] - start_of[inner]
    left = np.where(inner, st.left - start_of, -1)
    right = np.where(inner, st.right - start_of, -1)
    cond = np.where(inner, st.threshold, st.leaf_value).astype(np.float32)
    bounds = list(starts[1:])
    pieces = {
        "left_children": np.split(left, bounds), "right_children": np.split(right, bounds),
        "parents": np.split(parent, bounds), "split_indices": np.split(st.feature, bounds),
        "split_conditions": np.split(cond, bounds), "default_left": np.split(st.default_left.astype(np.int64), bounds),
        "base_weights": np.split(np.where(inner, 0.0, cond).astype(np.float32), bounds),
    }
    n_feature = str(st.n_features)
    trees = []
    for t in range(st.n_trees):
        size = len(pieces["left_children"][t])
        tree = {k: [float(v) for v in pieces[k][t]] if pieces[k][t].dtype.kind == "f" else pieces[k][t].tolist()
                for k in pieces}
        tree.update(id=t, loss_changes=[0.0] * size, sum_hessian=[1.0] * size, split_type=[0] * size,
                    categories=[], categories_nodes=[], categories_segments=[], categories_sizes=[],
                    tree_param={"num_deleted": "0", "num_feature": n_feature, "num_nodes": str(size),
                                "size_leaf_vector": "1"})
        trees.append(tree)
    learner = template["learner"]
    learner["learner_model_param"]["num_feature"] = n_feature
    learner["feature_names"], learner["feature_types"] = [], []
    model = learner["gradient_booster"]["model"]
    model.update(trees=trees, tree_info=[0] * st.n_trees, iteration_indptr=list(range(st.n_trees + 1)))
    model["gbtree_model_param"]["num_trees"] = str(st.n_trees)
    booster = xgboost.Booster()
    booster.load_model(bytearray(json.dumps(template).encode()))
    booster.set_param({"nthread": st.n_jobs})
    return booster


class FastJoint:
    """The specialised trees of one joint booster, per device embedding (least-recently-used memos).

    ``predict(embedding, X)`` returns the booster's prediction for rows ``[embedding, X]``, or
    None where the full booster is the better way: more than :data:`NUMPY_MAX_ROWS` rows of a
    booster below :data:`BOOSTER_MIN_NODES`, a medium batch for an embedding whose specialised
    XGBoost model is not built yet (building it costs about as much as predicting
    :data:`BOOSTER_MIN_ROWS` rows), or a booster this module cannot read (categorical splits,
    another objective).
    """

    def __init__(self, booster, *, max_embeddings: int = MAX_EMBEDDINGS, max_walks: int = MAX_WALKS):
        self._source = booster
        self._trees: "TreeArrays | None" = None
        self._supported = True
        self._memo: "OrderedDict[bytes, SpecialisedTrees]" = OrderedDict()
        self._walks: "OrderedDict[tuple, Walk]" = OrderedDict()  # several devices at once (adapted ones' bases)
        self._max_embeddings, self._max_walks = max_embeddings, max_walks

    def specialised(self, embedding: np.ndarray) -> "SpecialisedTrees | None":
        key = embedding.tobytes()
        st = self._memo.get(key)
        if st is not None:
            self._memo.move_to_end(key)
            return st
        if self._trees is None and self._supported:
            try:
                self._trees = TreeArrays(self._source)
            except ValueError:
                self._supported = False
        if not self._supported:
            return None
        st = self._memo[key] = self._trees.specialise(embedding)
        if len(self._memo) > self._max_embeddings:
            self._memo.popitem(last=False)
        return st

    def leaf_masks(self, embedding: np.ndarray, blocks) -> "LeafMasks | None":
        """The :class:`~edgeperf.predictors._fastcodes.LeafMasks` of an embedding's specialised
        trees over ``blocks`` (kept with those trees, so bounded by the same memo), or None."""
        st = self.specialised(embedding)
        if st is None:
            return None
        masks = st.leaf_masks
        if masks is None or masks[0] is not blocks:
            from edgeperf.predictors._fastcodes import LeafMasks

            masks = st.leaf_masks = (blocks, LeafMasks(st, blocks))
        return masks[1]

    def predict_many(self, embeddings: "list[np.ndarray]", X: np.ndarray) -> "np.ndarray | None":
        """``(n, len(embeddings))``: one walk over every embedding's trees (few rows only, else None)."""
        if X.shape[0] > NUMPY_MAX_ROWS:
            return None
        parts = [self.specialised(e) for e in embeddings]
        if not self._supported:
            return None
        key = tuple(id(p) for p in parts)
        walk = self._walks.get(key)
        if walk is None or walk.parts != parts:  # (an id may be reused after an eviction)
            walk = self._walks[key] = Walk(parts)
            if len(self._walks) > self._max_walks:
                self._walks.popitem(last=False)
        else:
            self._walks.move_to_end(key)
        return walk(np.ascontiguousarray(X, dtype=np.float32))

    def predict(self, embedding: np.ndarray, X: np.ndarray) -> "np.ndarray | None":
        st = self.specialised(embedding)
        if st is None:
            return None
        if X.shape[0] > NUMPY_MAX_ROWS and (self._trees.left.size < BOOSTER_MIN_NODES
                                            or not (st.has_booster or X.shape[0] >= BOOSTER_MIN_ROWS)):
            return None
        return st.predict(X)
