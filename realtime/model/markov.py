"""A Continuator-style variable-order Markov model over small integer symbols (MIDI pitches).

It remembers every phrase fragment it has heard (every context of length 0..max_order and
what followed it) and answers with interpolated Witten-Bell back-off: a long remembered
context speaks first, shorter ones fill in what it has never heard, and a uniform floor
keeps every note possible. Two jobs: a baseline held-out NLL beside the LSTM, and a cheap
generator that can keep playing when the network cannot.

    P_k(w|h) = (c(h,w) + T(h) * P_{k-1}(w|h')) / (c(h) + T(h))

with c(h) how often h was followed by anything, T(h) how many distinct notes followed it,
and h' the context without its oldest note. If h was never heard, P_k = P_{k-1}. Order 0
blends note counts with a uniform distribution over the vocabulary the same way; without the
uniform floor (`uniform_floor=False`, the duet's memory of the player: blended into the network's
choice, a floor would be noise) order 0 is the note counts alone, and a model that heard nothing
gives all zeros: no opinion.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence

import numpy as np

Context = tuple[int, ...]


class MarkovModel:
    """Counts of what followed each remembered context, with Witten-Bell back-off on top."""

    def __init__(self, max_order: int = 8, vocab_size: int = 128, max_contexts: int | None = None,
                 uniform_floor: bool = True) -> None:
        """Set how far back the model listens, how many notes it can play, and (for a learner that
        runs all show long) how many contexts it may remember: past that, known contexts still count
        but new ones are not added, so memory stays bounded."""
        if max_order < 0:
            raise ValueError(f"max_order must be >= 0, got {max_order}")
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.max_order = max_order
        self.vocab_size = vocab_size
        self.max_contexts = max_contexts
        self.uniform_floor = uniform_floor
        self._followers: dict[Context, dict[int, int]] = {}  # context -> next note -> count
        self._heard: dict[Context, int] = {}  # context -> how often it was followed by anything
        self._base: np.ndarray | None = None  # cached order-0 distribution

    # ----- learning -------------------------------------------------------------------------

    def fit(self, sequences: Iterable[Sequence[int]]) -> MarkovModel:
        """Learn from a corpus of independent phrases; returns self for chaining."""
        for sequence in sequences:
            self.update(sequence)
        return self

    def update(self, sequence: Sequence[int], start: int = 0) -> None:
        """Learn one more phrase in place, so the model can pick up what is played live.

        Notes before `start` are context only (the end of the previous phrase): what follows them is
        learned, they themselves are not counted again.
        """
        notes = self._checked(sequence)
        for i in range(start, len(notes)):
            note = notes[i]
            for k in range(min(self.max_order, i) + 1):
                context = tuple(notes[i - k : i])
                followers = self._followers.get(context)
                if followers is None:
                    if self.max_contexts is not None and len(self._followers) >= self.max_contexts:
                        continue
                    followers = self._followers[context] = {}
                    self._heard[context] = 0
                followers[note] = followers.get(note, 0) + 1
                self._heard[context] += 1
        if notes:
            self._base = None

    # ----- listening ------------------------------------------------------------------------

    def distribution(self, context: Sequence[int], order: int | None = None) -> np.ndarray:
        """Probability of every next note, so a player can sample, mask or inspect it."""
        order = self._checked_order(order)
        recent = self._recent(self._checked(context), order)
        p = self.order0().copy()
        for k in range(1, len(recent) + 1):
            h = tuple(recent[-k:])
            followers = self._followers.get(h)
            if followers is None:
                break  # a longer context containing an unheard one was never heard either
            variety = len(followers)
            p = (self._as_array(followers) + variety * p) / (self._heard[h] + variety)
        return p

    def log_prob(self, context: Sequence[int], symbol: int, order: int | None = None) -> float:
        """Natural log of P(symbol | context), computed without building the full distribution."""
        order = self._checked_order(order)
        notes = self._checked(context)
        (note,) = self._checked([symbol])
        return math.log(self._prob(notes, len(notes), note, order))

    def nll(self, sequences: Iterable[Sequence[int]], order: int | None = None) -> float:
        """Mean nats per note over a corpus, the number to set beside the LSTM's held-out loss."""
        order = self._checked_order(order)
        total, n = 0.0, 0
        for sequence in sequences:
            notes = self._checked(sequence)
            for i, note in enumerate(notes):
                total -= math.log(self._prob(notes, i, note, order))
            n += len(notes)
        if n == 0:
            raise ValueError("nll needs at least one symbol")
        return total / n

    def longest_context(self, context: Sequence[int], order: int | None = None) -> int:
        """How many of the latest notes the model actually remembers (Continuator's match length)."""
        order = self._checked_order(order)
        recent = self._recent(self._checked(context), order)
        k = 0
        while k < len(recent) and tuple(recent[len(recent) - k - 1 :]) in self._heard:
            k += 1
        return k

    # ----- playing --------------------------------------------------------------------------

    def sample(
        self,
        context: Sequence[int],
        rng: np.random.Generator,
        order: int | None = None,
        temperature: float = 1.0,
        allowed: np.ndarray | None = None,
    ) -> int:
        """Pick the next note; temperature loosens or tightens the style, allowed keeps it in key."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        p = self.distribution(context, order)
        if temperature != 1.0:
            logits = np.log(p) / temperature
            p = np.exp(logits - logits.max())
        if allowed is not None:
            allowed = np.asarray(allowed)
            if allowed.dtype != np.bool_ or allowed.shape != (self.vocab_size,):
                raise ValueError(f"allowed must be a bool array of shape ({self.vocab_size},)")
            if not allowed.any():
                raise ValueError("allowed masks out every symbol")
            p = np.where(allowed, p, 0.0)
        return int(rng.choice(self.vocab_size, p=p / p.sum()))

    # ----- keeping between shows -------------------------------------------------------------

    def context_count(self) -> int:
        """How many contexts it remembers (what max_contexts bounds)."""
        return len(self._followers)

    def followers(self, context: Context) -> dict[int, int] | None:
        """What followed `context` and how often (the model's own dict: read it, never write into it)."""
        return self._followers.get(context)

    def counts(self) -> dict[Context, dict[int, int]]:
        """A copy of what followed each context: another thread may write it to a file while this one learns."""
        return {context: dict(followers) for context, followers in self._followers.items()}

    @classmethod
    def from_counts(cls, counts: dict[Context, dict[int, int]], max_order: int, vocab_size: int = 128,
                    max_contexts: int | None = None, uniform_floor: bool = True) -> MarkovModel:
        """A model holding exactly these counts (as `counts()` gave them); ValueError says what does not fit."""
        model = cls(max_order, vocab_size, max_contexts, uniform_floor)
        for context, followers in counts.items():
            if len(context) > max_order:
                raise ValueError(f"context {list(context)} is longer than max_order {max_order}")
            model._checked([*context, *followers])
            if not followers or not all(type(n) is int and n >= 1 for n in followers.values()):
                raise ValueError(f"context {list(context)} needs followers counted 1 or more times")
            model._followers[tuple(context)] = dict(followers)
            model._heard[tuple(context)] = sum(followers.values())
        return model

    # ----- internals ------------------------------------------------------------------------

    def _prob(self, notes: Sequence[int], end: int, note: int, order: int) -> float:
        """P(note | notes[:end]) by the same recursion as distribution, one entry only."""
        p = float(self.order0()[note])
        for k in range(1, min(order, end) + 1):
            h = tuple(notes[end - k : end])
            followers = self._followers.get(h)
            if followers is None:
                break
            variety = len(followers)
            p = (followers.get(note, 0) + variety * p) / (self._heard[h] + variety)
        return p

    def order0(self) -> np.ndarray:
        """The distribution after no context: note counts blended with the uniform floor (or alone, without
        it), cached until the next update (read it, never write into it)."""
        if self._base is None:
            floor = np.full(self.vocab_size, 1.0 / self.vocab_size if self.uniform_floor else 0.0)
            followers = self._followers.get(())
            if not followers:
                self._base = floor
            else:
                variety = len(followers) if self.uniform_floor else 0
                self._base = (self._as_array(followers) + variety * floor) / (self._heard[()] + variety)
        return self._base

    def _as_array(self, followers: dict[int, int]) -> np.ndarray:
        """Sparse follower counts as a dense vocabulary-sized vector for vector arithmetic."""
        counts = np.zeros(self.vocab_size)
        counts[np.fromiter(followers.keys(), dtype=np.intp)] = np.fromiter(followers.values(), dtype=np.float64)
        return counts

    def _checked(self, sequence: Sequence[int]) -> list[int]:
        """Plain ints in [0, vocab_size), so a stray pitch fails loudly instead of being ignored."""
        notes = [operator.index(s) for s in sequence]
        for s in notes:
            if not 0 <= s < self.vocab_size:
                raise ValueError(f"symbol {s} is outside [0, {self.vocab_size})")
        return notes

    def _checked_order(self, order: int | None) -> int:
        """Default to max_order; refuse orders the counts cannot answer rather than capping silently."""
        if order is None:
            return self.max_order
        if not 0 <= order <= self.max_order:
            raise ValueError(f"order must be in [0, {self.max_order}], got {order}")
        return order

    @staticmethod
    def _recent(notes: list[int], order: int) -> list[int]:
        """The last `order` notes (all of them if fewer)."""
        return notes[max(0, len(notes) - order) :] if order else []
