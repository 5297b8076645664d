"""Hearing and answering with one model: feed observed notes, sample new ones under constraints.

The generator keeps musical time in beats for the notes it writes, so it can enforce maximum
polyphony: the inter-onset head is sampled first and masked so the new note never starts while
too many of its own notes still sound; the pitch head then excludes pitches still sounding.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from .runner import ModelRunner, field_slices
from .sampling import TAIL, Constraints, Sampler
from .tokens import DURATION_BEATS, IOI_BEATS, Token

_IOI = np.asarray(IOI_BEATS)
EPSILON_BEATS = 1e-9  # sums of bucket times drift in the last bits; a note ending as another starts does not overlap


class Generator:
    """A model stream that can listen (feed) and speak (sample_next)."""

    def __init__(self, runner: ModelRunner, sampler: Sampler, constraints: Constraints | None = None) -> None:
        self.runner, self.sampler = runner, sampler
        self.slices = field_slices()
        n = max(s.stop for s in self.slices.values())
        self._starts = np.array([s.start for s in self.slices.values()], dtype=np.intp)
        self._starts_list = self._starts.tolist()
        self._field_of = np.repeat(np.arange(len(self._starts)), [s.stop - s.start for s in self.slices.values()])
        self._x, self._bias, self._spread = np.empty(n), np.zeros(n), np.empty(n)
        self._maxes = np.empty(len(self._starts))
        self.set_constraints(constraints or Constraints())
        self.reset()

    def set_constraints(self, constraints: Constraints) -> None:
        self.constraints = constraints
        self._pitch_mask = constraints.pitch_mask()
        self._bias[:] = 0.0
        self._bias[self.slices["pitch"]][~self._pitch_mask] = -np.inf

    def reset(self) -> None:
        """Forget everything heard; the next prediction is of a first note."""
        self.runner.reset()
        self.runner.start()
        self.begin_answer()

    def begin_answer(self) -> None:
        """Start a fresh timeline for polyphony bookkeeping (the model state is kept)."""
        self.time_beats = 0.0
        self.sounding: list[tuple[float, int]] = []  # (end_beats, pitch) of our own notes

    def feed(self, token: Token) -> None:
        """The model hears one note (the player's, or its own once chosen)."""
        self.runner.step(token.pitch, token.ioi, token.duration, token.velocity)

    def sample_next(self, ioi: int | None = None) -> Token:
        """Choose the next note from the current prediction, under the constraints; does not feed it.

        `ioi` fixes the onset instead of sampling it: the engine's first answer note starts when
        the phrase has ended, and the model must hear that real gap, not one it imagined.
        All four heads are scaled, masked and exponentiated in one numpy pass; each head's nucleus
        is then drawn in plain Python from the few candidates that carry weight.
        """
        x = self._x
        np.multiply(self.runner.logits[0], 1.0 / self.sampler.temperature, out=x)
        np.add(x, self._bias, out=x)  # the key and range mask on the pitch head
        ioi_offset = self.slices["ioi"].start
        if ioi is not None:
            x[self.slices["ioi"]] = -np.inf
            x[ioi_offset + ioi] = 0.0
        elif self.constraints.max_polyphony is not None and len(self.sounding) >= self.constraints.max_polyphony:
            ends = sorted(end for end, _ in self.sounding)
            must_wait = ends[len(self.sounding) - self.constraints.max_polyphony] - self.time_beats
            too_soon = int(np.searchsorted(_IOI, must_wait - EPSILON_BEATS))  # buckets before this overlap
            x[ioi_offset:ioi_offset + min(too_soon, len(_IOI) - 1)] = -np.inf
        np.maximum.reduceat(x, self._starts, out=self._maxes)
        np.take(self._maxes, self._field_of, out=self._spread)
        np.subtract(x, self._spread, out=x)
        np.exp(x, out=x)
        candidates = np.flatnonzero(x > (TAIL if self.sampler.top_p < 1.0 else 0.0))
        classes, weights = candidates.tolist(), x[candidates].tolist()
        cut = [bisect_left(classes, start) for start in self._starts_list] + [len(classes)]
        heads = [(classes[cut[i]:cut[i + 1]], weights[cut[i]:cut[i + 1]]) for i in range(4)]
        nucleus = self.sampler.nucleus
        ioi = nucleus(*heads[1]) - ioi_offset
        onset = self.time_beats + IOI_BEATS[ioi]
        pitches, pitch_weights = heads[0]
        still_sounding = {pitch for end, pitch in self.sounding if end > onset + EPSILON_BEATS}
        if still_sounding:  # never restrike a pitch that is still sounding, if anything else is left
            kept = [(c, w) for c, w in zip(pitches, pitch_weights) if c not in still_sounding]
            if kept:
                pitches, pitch_weights = [c for c, _ in kept], [w for _, w in kept]
        pitch = nucleus(pitches, pitch_weights)
        duration = nucleus(*heads[2]) - self.slices["duration"].start
        velocity = nucleus(*heads[3]) - self.slices["velocity"].start
        return Token(pitch, ioi, duration, velocity)

    @property
    def pitch_mask(self) -> np.ndarray:
        return self._pitch_mask

    def advance(self, token: Token) -> None:
        """Accept a note into our own timeline (polyphony bookkeeping) without stepping the model."""
        self.time_beats += IOI_BEATS[token.ioi]
        self.sounding = [(end, p) for end, p in self.sounding if end > self.time_beats + EPSILON_BEATS]
        self.sounding.append((self.time_beats + DURATION_BEATS[token.duration], token.pitch))

    def commit(self, token: Token) -> None:
        """Accept a sampled note: advance our timeline and let the model hear it."""
        self.advance(token)
        self.feed(token)

    def generate(self, n: int) -> list[Token]:
        """n new notes in a row (offline continuation)."""
        out = []
        for _ in range(n):
            token = self.sample_next()
            self.commit(token)
            out.append(token)
        return out
