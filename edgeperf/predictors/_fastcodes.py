"""Exact single-architecture evaluation of specialised trees from the architecture's decisions.

A walk of 800 trees of depth 8 costs one numpy step per level (about 35 us for one row); this
module replaces it, for one architecture at a time, by a fixed handful of numpy calls whose cost
hardly depends on the depth (QuickScorer's idea, Lucchese et al. SIGIR 2015, on decisions):

- :class:`DecisionBlocks`: every column of the encoding is a function of a few decisions of the
  space (``space.feature_decisions``: FBNet's one-hot column of layer ``i`` of that layer's
  choice; OFA's of the stage depth and the layer's expansion and kernel). Decisions are grouped
  into blocks so that every column depends on one block; a block's *code* is the mixed-radix index of
  its decisions' options, and the block codes of an architecture are one small integer product
  ``choices @ M`` (:meth:`DecisionBlocks.rows`).
- :class:`LeafMasks`: within a tree the leaves are numbered left to right, 64 per word. For each
  (block, code) a mask keeps the leaves that no split on that block's columns rules out. The leaf
  an architecture reaches in a tree is then the one bit left in the AND of its blocks' masks
  (each split tests one block's column, so every other leaf is ruled out by some block), and its
  value is found from the bit's position.

The leaves are summed in float32 in tree order onto the base score, as XGBoost does (an all-zero
word adds a zero), so the result equals the walk and the booster exactly. Derived state, built
from the specialised trees on demand, never saved.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DecisionBlocks", "LeafMasks", "MAX_BLOCK_CODES"]

#: Most option combinations of one block (OFA: stage depth x expansion x kernel = 27); more would
#: make the masks too large, and the space is then evaluated from encoded rows only.
MAX_BLOCK_CODES = 4096
#: Two blocks are merged into one while the pair has at most this many codes.
MAX_MERGED_CODES = 128
#: Leaves per mask word.
_WORD_BITS = 64
#: Architectures checked against ``space.encode`` when the blocks are built (a guard against a
#: wrong ``feature_decisions``; the tests check every space exhaustively per block).
_CHECK_ARCHS = 64


class DecisionBlocks:
    """Blocks of a space's decisions such that each encoding column depends on one block.

    ``rows(choices)`` are the architectures' mask rows (one per block: the block's first row plus
    its code); ``values[row, col]`` is column ``col`` for that code of ``col``'s block. Raises
    ``ValueError`` when the space does not describe its encoding.
    """

    def __init__(self, space, encoding: str):
        deps = space.feature_decisions(encoding)
        n_cols = space.encoding_dim(encoding)
        if deps is None or len(deps) != n_cols:
            raise ValueError(f"space {space.name!r} does not describe what its {encoding!r} columns depend on")
        sizes = [len(options) for _, options in space.choices]
        blocks: list[set] = []
        for s in sorted({tuple(sorted(set(d))) for d in deps}, key=len, reverse=True):
            if not any(set(s) <= b for b in blocks):  # a set inside a block's joins it
                blocks.append(set(s))
        if any(_codes(b, sizes) > MAX_BLOCK_CODES for b in blocks):
            raise ValueError(f"space {space.name!r}: a column depends on more than {MAX_BLOCK_CODES} option combinations")
        # Fewer, larger blocks: one AND per block, so pairs of small blocks are merged (FBNet: 11
        # pairs of layers, 81 codes each; OFA's 27-code layers stay as they are).
        merged = []
        for b in sorted(blocks, key=lambda b: min(b)):
            if merged and len(merged[-1][1]) == 1 and _codes(merged[-1][0] | b, sizes) <= MAX_MERGED_CODES:
                merged[-1][0].update(b)
                merged[-1][1].append(b)
            else:
                merged.append((set(b), [b]))
        blocks = [b for b, _ in merged]
        self.blocks = [tuple(sorted(b)) for b in blocks]
        self.block_of_col = np.array([next(i for i, b in enumerate(blocks) if set(d) <= b) for d in deps])
        n_codes = [_codes(b, sizes) for b in self.blocks]
        self.offsets = np.concatenate([[0], np.cumsum(n_codes)[:-1]]).astype(np.int64)
        self.n_rows = int(sum(n_codes))
        self.M = np.zeros((len(sizes), len(self.blocks)), dtype=np.int64)
        for j, b in enumerate(self.blocks):
            radix = 1
            for d in reversed(b):
                self.M[d, j] = radix
                radix *= sizes[d]
        # One architecture per (block, code): that code on the block, option 0 elsewhere.
        reps = np.zeros((self.n_rows, len(sizes)), dtype=np.int64)
        for j, b in enumerate(self.blocks):
            codes = np.arange(n_codes[j])
            for d in b:
                reps[self.offsets[j] + codes, d] = codes // self.M[d, j] % sizes[d]
        X = space.encode([space.from_choices(r) for r in reps], encoding)
        self.values = X  # (n_rows, n_cols); only the row's own block's columns are meaningful
        self._gather = np.arange(n_cols, dtype=np.int64)
        self.n_cols = n_cols
        self._keys = None  # (projection, per-block sorted keys) for decode, built on first use
        self.space_name = space.name
        check = space.sample(_CHECK_ARCHS, seed=0)
        rows = self.rows(np.array([space.to_choices(a) for a in check]))
        if not np.array_equal(self.encode(rows), space.encode(check, encoding)):
            raise ValueError(f"space {space.name!r}: its feature_decisions disagree with its {encoding!r} encoding")

    def decode(self, X: np.ndarray) -> "np.ndarray | None":
        """Mask rows ``(n, n_blocks)`` of encoded rows ``X`` (the inverse of :meth:`encode`), or None
        where a row is not the encoding of block codes. Each block's columns are matched to the
        nearest code by a random projection, then checked against ``X`` exactly."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_cols:
            return None
        if self._keys is None:
            rng = np.random.default_rng(0)
            # float32: 20x faster than float64 here, and a near collision only fails the check below
            R = np.zeros((self.n_cols, len(self.blocks)), dtype=np.float32)
            R[np.arange(self.n_cols), self.block_of_col] = rng.uniform(1.0, 2.0, self.n_cols)
            keys = []
            for b, (lo, hi) in enumerate(zip(self.offsets, np.append(self.offsets[1:], self.n_rows))):
                cols = np.flatnonzero(self.block_of_col == b)
                own = self.values[lo:hi][:, cols]  # each code's values on the block's columns
                k = own.astype(np.float32) @ R[cols, b]
                order = np.argsort(k, kind="stable")
                keys.append((cols, k[order], order, own))
            self._keys = (R, keys)
        R, keys = self._keys
        projected = X.astype(np.float32, copy=False) @ R
        rows = np.empty(projected.shape, dtype=np.int64)
        for b, (cols, sorted_keys, order, own) in enumerate(keys):
            got = projected[:, b]
            if sorted_keys.size == 1:
                i = np.zeros(got.size, dtype=np.int64)
            else:  # the nearer of the two neighbours
                i = np.clip(np.searchsorted(sorted_keys, got), 1, sorted_keys.size - 1)
                i -= np.abs(got - sorted_keys[i - 1]) <= np.abs(got - sorted_keys[i])
            code = order[i]
            if not np.array_equal(own.take(code, axis=0).astype(X.dtype, copy=False), X[:, cols]):
                return None
            rows[:, b] = self.offsets[b] + code
        return rows

    def rows(self, choices: np.ndarray) -> np.ndarray:
        """Mask rows ``(n, n_blocks)`` (or ``(n_blocks,)``) of option-index rows ``choices``."""
        return choices @ self.M + self.offsets

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """The encoded rows ``(n, n_cols)`` of mask rows (equal to ``space.encode``)."""
        rows = np.atleast_2d(rows)
        return self.values[rows[:, self.block_of_col], self._gather]


def _codes(block, sizes) -> int:
    out = 1
    for d in block:
        out *= sizes[d]
    return out


class LeafMasks:
    """The leaf masks of one device's specialised trees (see the module docstring).

    ``masks``: ``(n_rows, n_words)`` uint64; ``slot_values``: ``(n_words, 65)`` float32, column 0
    zero (a word with no leaf left) and column ``i + 1`` the leaf of bit ``i``.
    """

    def __init__(self, st, blocks: DecisionBlocks):
        n = st.left.size
        inner = ~st.is_leaf
        # depth and left-to-right key of every node, level by level from the roots
        depth = np.zeros(n, dtype=np.int64)
        key = np.zeros(n, dtype=np.int64)
        frontier = st.roots
        while frontier.size:
            frontier = frontier[inner[frontier]]
            for child, bit in ((st.left, 0), (st.right, 1)):
                c = child[frontier]
                depth[c] = depth[frontier] + 1
                key[c] = 2 * key[frontier] + bit
            frontier = np.concatenate([st.left[frontier], st.right[frontier]])
        D = int(depth.max()) if n else 0
        tree = st.tree_of_node
        start = (tree << D) + (key << (D - depth))  # the subtree's first and last-plus-one leaf keys
        end = (tree << D) + ((key + 1) << (D - depth))
        leaves = np.flatnonzero(st.is_leaf)
        order = np.argsort(start[leaves], kind="stable")
        leaves, leaf_keys = leaves[order], start[leaves][order]
        # leaf position -> (word, bit): each tree starts a new word
        leaf_tree = tree[leaves]
        n_trees = st.n_trees
        per_tree = np.bincount(leaf_tree, minlength=n_trees)
        first = np.concatenate([[0], np.cumsum(per_tree)[:-1]])
        words_per_tree = (per_tree + _WORD_BITS - 1) // _WORD_BITS
        first_word = np.concatenate([[0], np.cumsum(words_per_tree)[:-1]])
        self.n_words = int(words_per_tree.sum())
        local = np.arange(leaves.size) - first[leaf_tree]
        q_of_leaf = first_word[leaf_tree] * _WORD_BITS + local  # bit position in the flat mask
        Q = self.n_words * _WORD_BITS
        slot = np.zeros((self.n_words, _WORD_BITS + 1), dtype=np.float32)
        slot.reshape(-1)[(q_of_leaf // _WORD_BITS) * (_WORD_BITS + 1) + q_of_leaf % _WORD_BITS + 1] = st.leaf_value[leaves]
        self.slot_values = slot
        self.base_score = np.float32(st.base_score)
        valid = np.zeros(Q, dtype=bool)
        valid[q_of_leaf] = True

        def q_range(lo_key, hi_key):  # leaf keys -> flat bit range (a subtree's leaves are contiguous)
            lo = np.searchsorted(leaf_keys, lo_key)
            hi = np.searchsorted(leaf_keys, hi_key)
            return q_of_leaf[lo], q_of_leaf[hi - 1] + 1

        nodes = np.flatnonzero(inner)
        l_lo, l_hi = q_range(start[st.left[nodes]], end[st.left[nodes]])
        r_lo, r_hi = q_range(start[st.right[nodes]], end[st.right[nodes]])
        feature, threshold = st.feature[nodes], st.threshold[nodes]
        block = blocks.block_of_col[feature]
        masks = np.empty((blocks.n_rows, self.n_words), dtype=np.uint64)
        n_blocks = len(blocks.blocks)
        bounds = np.append(blocks.offsets, blocks.n_rows)
        for b in range(n_blocks):
            mine = np.flatnonzero(block == b)
            rows = np.arange(bounds[b], bounds[b + 1])
            # XGBoost: go left when value < threshold (the values here are never missing)
            left = blocks.values[rows[:, None], feature[mine][None, :]] < threshold[mine][None, :]
            lo = np.where(left, r_lo[mine], l_lo[mine])  # the side not taken is ruled out
            hi = np.where(left, r_hi[mine], l_hi[mine])
            k = rows.size
            base = (np.arange(k) * (Q + 1))[:, None]
            diff = np.bincount((base + lo).ravel(), minlength=k * (Q + 1))
            diff -= np.bincount((base + hi).ravel(), minlength=k * (Q + 1))
            kept = (np.cumsum(diff.reshape(k, Q + 1)[:, :Q], axis=1) == 0) & valid
            packed = np.packbits(kept.reshape(k, self.n_words, _WORD_BITS), axis=2, bitorder="little")
            masks[rows] = packed.view("<u8").reshape(k, self.n_words)
        self.masks = masks


#: A word with at most one bit left, converted to float32 (exact: a power of two), has the
#: biased exponent 127 + i for bit i and 0 for no bit: its top bits name the slot.
_EXPONENT_SHIFT = 23
_SLOTS = 127 + _WORD_BITS
_SLOT_OF_BIT = 127 + np.arange(_WORD_BITS)


class CodeEvaluator:
    """The tree sums of one or more devices' :class:`LeafMasks` for one architecture's mask rows.

    ``evaluator(rows)`` is ``(n_parts,)`` float64, each equal to that device's booster output:
    one AND-reduce over every part's words, the bit left in each word named by its float32
    exponent, and the leaves summed in float32 in tree order per part. Each part starts with a
    word whose one bit is always kept and holds the base score, and is padded with empty words.
    """

    def __init__(self, parts: "list[LeafMasks]"):
        self.parts = list(parts)
        self.k = len(parts)
        self.W = 1 + max(p.n_words for p in parts)
        n_rows = parts[0].masks.shape[0]
        masks = np.zeros((n_rows, self.k * self.W), dtype=np.uint64)
        slots = np.zeros((self.k * self.W, _SLOTS), dtype=np.float32)
        for j, p in enumerate(parts):
            first = j * self.W
            masks[:, first] = 1
            slots[first, _SLOT_OF_BIT[0]] = p.base_score
            masks[:, first + 1 : first + 1 + p.n_words] = p.masks
            slots[first + 1 : first + 1 + p.n_words, _SLOT_OF_BIT] = p.slot_values[:, 1:]
        self.masks = masks
        self.flat_slots = slots.reshape(-1)
        self.stride = np.arange(self.k * self.W, dtype=np.int32) * np.int32(_SLOTS)

    def __call__(self, rows) -> np.ndarray:
        word = np.bitwise_and.reduce(self.masks.take(rows, axis=0), axis=0)
        slot = (word.astype(np.float32).view(np.int32) >> _EXPONENT_SHIFT) + self.stride
        terms = self.flat_slots.take(slot)
        if self.k == 1:
            return np.add.accumulate(terms)[-1:].astype(np.float64)
        return np.add.accumulate(terms.reshape(self.k, self.W), axis=1)[:, -1].astype(np.float64)


class AdditiveCosts:
    """A function of one-hot rows (``cost_matrix``: ``(n, cols) -> (n, m)``) as a sum of per-code terms.

    In every space with a vectorised cost model, the analytic costs (and the additive device models
    of ``analytic`` / ``compact``) are a fixed part plus one term per layer position, which may also
    depend on one *context* block (OFA: the resolution). The terms are read off ``cost_matrix`` on
    one-hot rows that change one block at a time (the rows need not be architectures: blocks may
    disagree on a shared decision), then checked on random block codes: exactly (``rtol`` 0, for
    integer costs) or within ``rtol`` of the largest value; ``ValueError`` when no context makes
    them add up. ``costs(rows)`` then is one gather and a sum.
    """

    def __init__(self, blocks: DecisionBlocks, cost_matrix, *, rtol: float = 0.0, seed: int = 0):
        sizes = np.diff(np.append(blocks.offsets, blocks.n_rows))
        rng = np.random.default_rng(seed)
        check = blocks.offsets + rng.integers(0, sizes, size=(_CHECK_ARCHS, sizes.size))
        want = cost_matrix(blocks.encode(check))
        for ctx in [None, *np.argsort(sizes, kind="stable")]:  # small contexts first: fewer probes
            n_ctx = 1 if ctx is None else int(sizes[ctx])
            base = np.broadcast_to(blocks.offsets, (n_ctx, sizes.size)).copy()
            if ctx is not None:
                base[:, ctx] += np.arange(n_ctx)
            probes = np.repeat(base, blocks.n_rows, axis=0)  # (context, row) -> that row's code on its block
            block_of_row = np.repeat(np.arange(sizes.size), sizes)
            probes[np.arange(probes.shape[0]), np.tile(block_of_row, n_ctx)] = np.tile(np.arange(blocks.n_rows), n_ctx)
            fixed = cost_matrix(blocks.encode(base))  # (context, m)
            terms = cost_matrix(blocks.encode(probes)).reshape(n_ctx, blocks.n_rows, -1) - fixed[:, None, :]
            if ctx is not None:
                terms[:, block_of_row == ctx] = 0.0
            c = 0 if ctx is None else check[:, ctx] - blocks.offsets[ctx]
            got = fixed[c] + terms[np.asarray(c)[:, None] if ctx is not None else 0, check].sum(axis=1)
            if np.array_equal(got, want) or (rtol > 0 and np.allclose(got, want, rtol=0, atol=rtol * np.abs(want).max())):
                self.ctx, self.fixed, self.n_rows = ctx, fixed, blocks.n_rows
                self.terms = terms.reshape(n_ctx * blocks.n_rows, -1)
                self.ctx_offset = 0 if ctx is None else int(blocks.offsets[ctx])
                return
        raise ValueError("the analytic costs are not a sum of per-block terms")

    def costs_many(self, rows: np.ndarray) -> np.ndarray:
        """``(n, m)`` costs of mask rows ``(n, n_blocks)``."""
        if self.ctx is None:
            return self.fixed[0] + self.terms[rows].sum(axis=1)
        c = rows[:, self.ctx] - self.ctx_offset
        return self.fixed[c] + self.terms[rows + (c * self.n_rows)[:, None]].sum(axis=1)

    def costs(self, rows: np.ndarray) -> np.ndarray:
        """``(m,)`` costs of one architecture's mask rows (equal to ``cost_matrix`` of its row)."""
        c = 0 if self.ctx is None else int(rows[self.ctx]) - self.ctx_offset
        return self.fixed[c] + self.terms.take(rows + c * self.n_rows, axis=0).sum(axis=0)
