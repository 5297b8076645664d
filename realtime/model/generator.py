"""Hearing and answering with one model: feed observed notes, sample new ones under constraints.

The generator keeps musical time in beats for the notes it writes, so it can enforce maximum
polyphony: the inter-onset head is sampled first and masked so the new note never starts while
too many of its own notes still sound; the pitch head then excludes pitches still sounding.
"""

from __future__ import annotations

import numpy as np

from .runner import ModelRunner, field_slices
from .sampling import Constraints, Sampler
from .tokens import DURATION_BEATS, IOI_BEATS, Token

_IOI = np.asarray(IOI_BEATS)
EPSILON_BEATS = 1e-9  # sums of bucket times drift in the last bits; a note ending as another starts does not overlap


class Generator:
    """A model stream that can listen (feed) and speak (sample_next)."""

    def __init__(self, runner: ModelRunner, sampler: Sampler, constraints: Constraints | None = None) -> None:
        self.runner, self.sampler = runner, sampler
        self.slices = field_slices()
        self.set_constraints(constraints or Constraints())
        self._pitch_allowed = np.empty(128, dtype=bool)
        self._ioi_allowed = np.empty(len(IOI_BEATS), dtype=bool)
        self.reset()

    def set_constraints(self, constraints: Constraints) -> None:
        self.constraints = constraints
        self._pitch_mask = constraints.pitch_mask()
        self._masks_pitch = not self._pitch_mask.all()

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
        """
        logits = self.runner.logits[0]
        ioi_allowed = None
        if ioi is not None:
            ioi_allowed = self._ioi_allowed
            ioi_allowed[:] = False
            ioi_allowed[ioi] = True
        elif self.constraints.max_polyphony is not None and len(self.sounding) >= self.constraints.max_polyphony:
            ends = sorted(end for end, _ in self.sounding)
            must_wait = ends[len(self.sounding) - self.constraints.max_polyphony] - self.time_beats
            ioi_allowed = self._ioi_allowed
            np.greater_equal(_IOI, must_wait - EPSILON_BEATS, out=ioi_allowed)
            if not ioi_allowed.any():
                ioi_allowed[-1] = True
        ioi = self.sampler.sample(logits[self.slices["ioi"]], ioi_allowed)
        onset = self.time_beats + IOI_BEATS[ioi]
        pitch_allowed = self._pitch_mask if self._masks_pitch else None
        still_sounding = [pitch for end, pitch in self.sounding if end > onset + EPSILON_BEATS]
        if still_sounding:  # never restrike a pitch that is still sounding
            pitch_allowed = self._pitch_allowed
            np.copyto(pitch_allowed, self._pitch_mask)
            pitch_allowed[still_sounding] = False
            if not pitch_allowed.any():
                np.copyto(pitch_allowed, self._pitch_mask)
        pitch = self.sampler.sample(logits[self.slices["pitch"]], pitch_allowed)
        duration = self.sampler.sample(logits[self.slices["duration"]])
        velocity = self.sampler.sample(logits[self.slices["velocity"]])
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
