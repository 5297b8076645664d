"""A MarkovModel's counts mirrored in flat arrays, so its next-note distribution is one compiled call.

The duet asks its memory of the player for a distribution before every note it chooses
(engine/playermemory.py). With numpy that is a handful of small calls per remembered order, each
~1-2 us on a shared 2-core machine: 20-35 us a note. Here a compiled kernel reads the followers of
each matched context from a pool and runs `MarkovModel.distribution`'s Witten-Bell recursion with
the same operations in the same order, so the numbers agree to the bit (tests/test_blend.py).

Layout: every remembered context has a row (`rows`: context -> row) saying where its followers sit
in the pool and how often it was heard. Learning a phrase writes the rows of the contexts it touched
again at the end of the pool; their old entries are left behind, and the pool doubles when full
(a whole show leaves a few MB behind; a memory read from its file starts compact). Learning and
asking happen on one thread (the engine's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .generator import _compiled
from .markov import Context, MarkovModel


@_compiled
def _distribution(order0, matched, n_matched, starts, varieties, heard, notes, counts, out):
    """Witten-Bell from order 0 up through the matched rows (shortest context first), into `out`."""
    size = out.shape[0]
    for i in range(size):
        out[i] = order0[i]
    for j in range(n_matched):
        row = matched[j]
        variety = varieties[row]
        for i in range(size):
            out[i] *= variety
        for t in range(starts[row], starts[row] + variety):
            out[notes[t]] += counts[t]
        denominator = heard[row] + variety
        for i in range(size):
            out[i] /= denominator


class MarkovKernel:
    """The compiled twin of one MarkovModel: learn through it, ask it for distributions."""

    def __init__(self, model: MarkovModel) -> None:
        self.model = model
        self.rows: dict[Context, int] = {}
        contexts = model.context_count()
        self._starts = np.zeros(max(1024, 2 * contexts), dtype=np.int64)
        self._varieties = np.zeros_like(self._starts)
        self._heard = np.zeros(len(self._starts))
        self._notes = np.zeros(max(4096, 4 * contexts), dtype=np.int64)
        self._counts = np.zeros(len(self._notes))
        self._end = 0  # the pool's first free entry
        self._matched = np.zeros(max(1, model.max_order), dtype=np.int64)
        self._mirror(list(model.counts()))
        _distribution(model.order0(), self._matched, 0, self._starts, self._varieties, self._heard,
                      self._notes, self._counts, np.empty(model.vocab_size))  # compiled (or loaded) now

    def learn(self, notes: Sequence[int], start: int = 0) -> None:
        """`MarkovModel.update(notes, start)`, and the rows of every context it counted written again."""
        self.model.update(notes, start)
        order = self.model.max_order
        self._mirror({tuple(notes[i - k:i]) for i in range(start, len(notes)) for k in range(min(order, i) + 1)})

    def distribution_into(self, context: Sequence[int], out: np.ndarray) -> np.ndarray:
        """`MarkovModel.distribution(context)` written into `out` (float64, vocab_size); nothing allocated."""
        order = self.model.max_order
        recent = context[len(context) - order:] if order < len(context) else context
        n = 0
        for k in range(1, len(recent) + 1):
            row = self.rows.get(tuple(recent[len(recent) - k:]))
            if row is None:
                break  # a longer context holding an unheard one was never heard either
            self._matched[n] = row
            n += 1
        _distribution(self.model.order0(), self._matched, n, self._starts, self._varieties, self._heard,
                      self._notes, self._counts, out)
        return out

    def _mirror(self, contexts) -> None:
        """Write these contexts' followers at the pool's end (those the model did not keep are skipped)."""
        for context in contexts:
            followers = self.model.followers(context)
            if followers is None:
                continue
            row = self.rows.setdefault(context, len(self.rows))
            if row >= len(self._starts):
                self._starts, self._varieties, self._heard = (np.concatenate([a, np.zeros_like(a)]) for a in
                                                              (self._starts, self._varieties, self._heard))
            n, end = len(followers), self._end
            while end + n > len(self._notes):
                self._notes, self._counts = (np.concatenate([a, np.zeros_like(a)]) for a in (self._notes, self._counts))
            self._notes[end:end + n] = np.fromiter(followers.keys(), dtype=np.int64, count=n)
            self._counts[end:end + n] = np.fromiter(followers.values(), dtype=np.float64, count=n)
            self._starts[row], self._varieties[row], self._heard[row] = end, n, sum(followers.values())
            self._end = end + n
