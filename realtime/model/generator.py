"""One model stream, stepped and sampled: hear a note (one ONNX step), choose the next (compiled).

`ModelRunner` (realtime/model/runner.py) steps the model one note at a time, the state carried by
the caller. `sample_note` chooses a note from the logits in compiled code (numba): the
onset first, masked so the new note never starts while too many of our own notes still sound (or
fixed), then the pitch, masked by key and range and by our notes still sounding at that onset, then
duration and velocity, each with temperature and top-p; a few microseconds a note instead of the ~50
numpy would cost, nothing allocated (the caller's buffers), the uniforms from the caller's seeded
generator. `Generator` joins the two and keeps musical time in beats for the polyphony bookkeeping.

numba keeps the compiled code in `cache_dir()`, outside the source tree: `./dev` fills it at install
and every later process loads it (~0.4 s, against ~1 s to compile it; both before any port opens).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from numba import njit
from numba.core import config as numba_config

from ..settings import RANGES, sampling
from .modelfile import field_slices
from .runner import ModelRunner  # noqa: F401 (re-exported: its old home)
from .sampling import Constraints, Sampler
from .tokens import DURATION_BEATS, IOI_BEATS, Token

_IOI = np.asarray(IOI_BEATS)
EPSILON_BEATS = 1e-9  # sums of bucket times drift in the last bits; a note ending as another starts does not overlap


def cache_dir() -> Path:
    """numba's cache for this module: $NUMBA_CACHE_DIR, else inside the virtualenv, else the user's cache."""
    if numba_config.CACHE_DIR:
        return Path(numba_config.CACHE_DIR)
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "var" / "cache" / "realtime" / "numba"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "realtime" / "numba"


def _compiled(function):
    """njit, cached in cache_dir() rather than numba's default __pycache__ beside this file."""
    chosen = numba_config.CACHE_DIR
    numba_config.CACHE_DIR = str(cache_dir())  # read once, as the decorator picks where its cache lives
    try:
        return njit(cache=True, nogil=True)(function)
    finally:
        numba_config.CACHE_DIR = chosen


@_compiled
def _draw(weights, order, n, top_p, u):
    """Index (0..n-1) drawn from the top-p nucleus of weights[:n]; `order` is scratch space."""
    total = 0.0
    for i in range(n):
        total += weights[i]
        order[i] = i
    # insertion sort, descending: heads have at most 128 classes, and most weights are ~0
    for i in range(1, n):
        j, k = i, order[i]
        while j > 0 and weights[order[j - 1]] < weights[k]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = k
    limit = top_p * total
    kept_mass, kept = 0.0, 0
    while kept < n:
        kept_mass += weights[order[kept]]
        kept += 1
        if kept_mass >= limit:
            break
    target = u * kept_mass
    for i in range(kept):
        target -= weights[order[i]]
        if target < 0.0:
            return order[i]
    return order[kept - 1]


@_compiled
def _weights(logits, bias, start, stop, inv_temperature, out):
    """exp of the scaled, masked logits of one head, relative to its largest; returns the count."""
    n = stop - start
    top = -np.inf
    for i in range(n):
        v = logits[start + i] * inv_temperature + bias[start + i]
        out[i] = v
        if v > top:
            top = v
    for i in range(n):
        out[i] = np.exp(out[i] - top) if out[i] > -np.inf else 0.0
    return n


@_compiled
def _pitch_weights(logits, bias, start, stop, inv_temperature, blend, markov, out):
    """The pitch head's weights with a share `blend` from `markov`, each renormalized over the allowed pitches
    first (so `blend` is the Markov model's true share and a forbidden pitch stays forbidden); 0: untouched."""
    n = _weights(logits, bias, start, stop, inv_temperature, out)
    if blend > 0.0:
        model_total, markov_total = 0.0, 0.0
        for i in range(n):
            model_total += out[i]  # 0 where forbidden
            markov_total += markov[i] if bias[start + i] > -np.inf else 0.0
        if markov_total > 0.0:
            keep, share = (1.0 - blend) / model_total, blend / markov_total
            for i in range(n):
                out[i] = out[i] * keep + markov[i] * share if bias[start + i] > -np.inf else 0.0
    return n


@_compiled
def sample_note(logits, bias, starts, inv_temperature, top_p, uniforms, fixed_ioi, first_allowed_ioi,
                ioi_beats, time_beats, sounding_ends, sounding_pitches, n_sounding, weights, order, out,
                blend, markov):
    """Fill out[0:4] with (pitch, ioi, duration, velocity) for the next note; `blend` of the pitch from `markov`."""
    # onset first: fixed, or not before the polyphony limit allows
    n = _weights(logits, bias, starts[1], starts[2], inv_temperature, weights)
    if fixed_ioi >= 0:
        for i in range(n):
            weights[i] = 1.0 if i == fixed_ioi else 0.0
    else:
        for i in range(min(first_allowed_ioi, n - 1)):
            weights[i] = 0.0
    ioi = _draw(weights, order, n, top_p, uniforms[1])
    onset = time_beats + ioi_beats[ioi]
    # pitch: never restrike one of our own notes still sounding at that onset
    n = _pitch_weights(logits, bias, starts[0], starts[1], inv_temperature, blend, markov, weights)
    left = 0.0
    for i in range(n_sounding):
        if sounding_ends[i] > onset + EPSILON_BEATS:
            weights[sounding_pitches[i]] = 0.0
    for i in range(n):
        left += weights[i]
    if left == 0.0:  # nothing else allowed: fall back to the key and range mask alone
        n = _pitch_weights(logits, bias, starts[0], starts[1], inv_temperature, blend, markov, weights)
    out[0] = _draw(weights, order, n, top_p, uniforms[0])
    out[1] = ioi
    n = _weights(logits, bias, starts[2], starts[3], inv_temperature, weights)
    out[2] = _draw(weights, order, n, top_p, uniforms[2])
    n = _weights(logits, bias, starts[3], len(logits), inv_temperature, weights)
    out[3] = _draw(weights, order, n, top_p, uniforms[3])


def compile_sampler() -> None:
    """Compile (or load from cache) before a performance, never during one."""
    starts = np.array([0, 128, 143, 157], dtype=np.int64)
    logits = np.zeros(165, dtype=np.float32)
    sample_note(logits, np.zeros(165), starts, 1.0, 0.9, np.full(4, 0.5), -1, 0, np.ones(15), 0.0,
                np.zeros(16), np.zeros(16, dtype=np.int64), 0, np.empty(128), np.empty(128, dtype=np.int64),
                np.empty(4, dtype=np.int64), 0.5, np.full(128, 1.0 / 128))
    _pitch_weights(logits, np.zeros(165), 0, 128, 1.0, 0.5, np.full(128, 1.0 / 128), np.empty(128))


class Generator:
    """A model stream that can listen (feed) and speak (sample_next, compiled in `sample_note`)."""

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
        self._no_markov = np.zeros(128)  # what the compiled sampler is handed when no Markov model is blended in
        compile_sampler()
        self.critic = None  # critic.attach: chooses each note instead (realtime/model/critic.py), and hears each fed
        self._lean_pitch, self._lean_ioi = np.zeros(128), np.zeros(len(IOI_BEATS))  # a mood's soft preferences
        self._key_pull, self._pulled = np.zeros(128), (None, 0.0)  # out-of-key pitches' penalty, and to what
        self._duration_bias = self._bias[self.slices["duration"]]  # a view: a fixed duration is masked here
        self.set_constraints(constraints or Constraints())
        self.reset()

    def set_constraints(self, constraints: Constraints) -> None:
        self.constraints = constraints
        self._pitch_mask = constraints.pitch_mask()
        self._refresh_bias()

    def set_leaning(self, pitch: np.ndarray | None = None, ioi: np.ndarray | None = None) -> None:
        """Soft preferences added to the scaled logits (a mood's register and density: engine/answershape.py);
        None: none. The key and range stay hard masks on top; a draw never has to pick a disliked note."""
        self._lean_pitch[:] = 0.0 if pitch is None else pitch
        self._lean_ioi[:] = 0.0 if ioi is None else ioi
        self._refresh_bias()

    def set_key_pull(self, pitch_classes: frozenset[int] | None, nats: float) -> None:
        """A soft pull into a key: `nats` off the scaled logit of every pitch outside `pitch_classes` (None or
        0 nats: none). Unlike a hard key mask, a chromatic note stays possible where the model is sure of it.
        Set once per answer (engine/continuation.py); the same key again changes nothing."""
        pulled = (pitch_classes if nats > 0 else None, nats if pitch_classes is not None else 0.0)
        if pulled == self._pulled:
            return
        self._pulled = pulled
        self._key_pull[:] = 0.0
        if pulled[0] is not None:
            for pitch_class in range(12):
                if pitch_class not in pitch_classes:
                    self._key_pull[pitch_class::12] = -nats
        self._refresh_bias()

    def _refresh_bias(self) -> None:
        self._bias[:] = 0.0
        pitch = self._bias[self.slices["pitch"]]
        np.add(self._lean_pitch, self._key_pull, out=pitch)
        pitch[~self._pitch_mask] = -np.inf
        self._bias[self.slices["ioi"]] = self._lean_ioi

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
        if self.critic is not None:
            self.critic.heard(token, self.runner.logits)

    def pitch_distribution(self, markov: np.ndarray | None = None, blend: float = 0.0) -> np.ndarray:
        """What the next pitch is drawn from (temperature, blend, key and range; before top-p), for inspection."""
        weights = np.empty(128)
        _pitch_weights(self.runner.logits[0], self._bias, self._starts[0], self._starts[1],
                       1.0 / self.sampler.temperature, blend, self._no_markov if markov is None else markov, weights)
        return weights / weights.sum()

    def sample_next(self, ioi: int | None = None, markov: np.ndarray | None = None, blend: float = 0.0,
                    duration: int | None = None) -> Token:
        """Choose the next note from the current prediction, under the constraints; does not feed it.

        `ioi` fixes the onset instead of sampling it: the engine's first answer note starts when
        the phrase has ended, and the model must hear that real gap, not one it imagined. `markov`
        (float64 probabilities of the 128 pitches) takes the share `blend` (0-1) of the pitch choice.
        `duration` fixes the duration bucket too (a rhythm prompt: the onset and duration are the pattern's,
        the pitch the model's). With a critic, the next note of the best of K fragments (proposed from this
        state when none waits; its durations are its own).
        """
        if self.critic is not None:
            return self.critic.next_note(self, ioi, self._no_markov if markov is None else markov, blend)
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
        if duration is not None:  # masked in place, and unmasked after: nothing allocated
            self._duration_bias[:] = -np.inf
            self._duration_bias[duration] = 0.0
        sample_note(self.runner.logits[0], self._bias, self._starts, 1.0 / sampler.temperature, sampler.top_p,
                    self._uniforms, -1 if ioi is None else ioi, first_allowed, _IOI, self.time_beats,
                    self._ends, self._pitches, min(n, len(self._ends)), self._weights, self._order, self._out,
                    blend, self._no_markov if markov is None else markov)
        if duration is not None:
            self._duration_bias[:] = 0.0
        pitch, ioi, duration, velocity = self._out.tolist()
        return Token(pitch, ioi, duration, velocity)

    @property
    def pitch_mask(self) -> np.ndarray:
        return self._pitch_mask

    def set_pitch_bias(self, bias: np.ndarray) -> None:
        """Precomputed pitch limits (128 floats: 0 allowed, -inf not) copied in, nothing allocated; a lead sheet's
        melody changes them note by note (realtime/leadsheet/melody.py). `pitch_mask` keeps the constraints'."""
        self._bias[self.slices["pitch"]] = bias

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
                    constraints: Constraints | None = None, style_guidance: float | None = None) -> Generator:
    """A generator on a shipped or given model, sampling with the model card's defaults unless overridden;
    a model with styles pushes a named one `style_guidance` more (runner.py; None: the settings' default)."""
    runner = ModelRunner(model, guidance=RANGES["style_guidance"].default if style_guidance is None else style_guidance)
    return Generator(runner, Sampler(seed, *sampling(runner.meta, temperature, top_p)), constraints)
