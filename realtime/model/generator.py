"""Hearing and answering with one model: feed observed notes, sample new ones under constraints.

The generator keeps musical time in beats for the notes it writes, so it can enforce maximum
polyphony: the inter-onset head is sampled first and masked so the new note never starts while
too many of its own notes still sound; the pitch head then excludes pitches still sounding.
"""

from __future__ import annotations

import numpy as np

from ..settings import sampling
from .fastsample import sample_note
from .fastsample import warm_up as compile_sampler
from .runner import ModelRunner, field_slices
from .sampling import Constraints, Sampler
from .tokens import DURATION_BEATS, IOI_BEATS, Token

_IOI = np.asarray(IOI_BEATS)
EPSILON_BEATS = 1e-9  # sums of bucket times drift in the last bits; a note ending as another starts does not overlap


class Generator:
    """A model stream that can listen (feed) and speak (sample_next, compiled in fastsample.py)."""

    def __init__(self, runner: ModelRunner, sampler: Sampler, constraints: Constraints | None = None) -> None:
        self.runner, self.sampler = runner, sampler
        self.slices = field_slices()
        n = max(s.stop for s in self.slices.values())
        self._starts = np.array([s.start for s in self.slices.values()], dtype=np.int64)
        self._bias = np.zeros(n)  # 0 where allowed, -inf where a constraint forbids (pitch head)
        # buffers for the compiled sampler: nothing is allocated per note
        self._weights, self._order = np.empty(128), np.empty(128, dtype=np.int64)
        self._uniforms, self._out = np.empty(4), np.empty(4, dtype=np.int64)
        self._ends, self._pitches = np.zeros(64), np.zeros(64, dtype=np.int64)  # our notes still sounding
        compile_sampler()
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

    def warm_up(self, notes: int = 64) -> None:
        """Whole throwaway notes (sampled, heard), so a first real one costs what the hundredth does; then reset.

        Stepping the model alone left the first sample twice the cost of later ones (Python and numpy
        paths run for the first time). The random sequence is put back: a seed still gives the same notes.
        """
        generator_state = self.sampler.rng.bit_generator.state
        self.generate(notes)
        self.sampler.rng.bit_generator.state = generator_state
        self.reset()

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
        first_allowed = 0
        max_polyphony = self.constraints.max_polyphony
        n = len(self.sounding)
        if ioi is None and max_polyphony is not None and n >= max_polyphony:
            ends = sorted(end for end, _ in self.sounding)
            first_allowed = int(np.searchsorted(_IOI, ends[n - max_polyphony] - self.time_beats - EPSILON_BEATS))
        for i, (end, pitch) in enumerate(self.sounding[:len(self._ends)]):
            self._ends[i], self._pitches[i] = end, pitch
        sampler = self.sampler
        sampler.rng.random(out=self._uniforms)
        sample_note(self.runner.logits[0], self._bias, self._starts, 1.0 / sampler.temperature, sampler.top_p,
                    self._uniforms, -1 if ioi is None else ioi, first_allowed, _IOI, self.time_beats,
                    self._ends, self._pitches, min(n, len(self._ends)), self._weights, self._order, self._out)
        pitch, ioi, duration, velocity = self._out.tolist()
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


def build_generator(model: str, seed: int, temperature: float | None = None, top_p: float | None = None,
                    constraints: Constraints | None = None) -> Generator:
    """A generator on a shipped or given model, sampling with the model card's defaults unless overridden."""
    runner = ModelRunner(model)
    return Generator(runner, Sampler(seed, *sampling(runner.meta, temperature, top_p)), constraints)
