"""Turning logits into notes: hard masks, then temperature and top-p, from a seeded generator.

Masks are applied before anything else so that the top-p nucleus is taken over allowed
choices only; masking after the nucleus could leave nothing to choose.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic-minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor-pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}


def key_pitch_classes(key: str) -> frozenset[int]:
    """Pitch classes of a key written like "C major", "F# minor", "Bb dorian" or "A" (major)."""
    parts = key.strip().split()
    if not parts or len(parts) > 2 or parts[0][0].upper() not in NOTE_NAMES:
        raise InputError(f"key {key!r}: write a tonic and a scale, e.g. 'C major' or 'F# minor'")
    tonic = NOTE_NAMES[parts[0][0].upper()]
    for accidental in parts[0][1:]:
        if accidental not in "#b":
            raise InputError(f"key {key!r}: {parts[0]!r} is not a note name")
        tonic += 1 if accidental == "#" else -1
    scale = parts[1].lower() if len(parts) == 2 else "major"
    if scale not in SCALES:
        raise InputError(f"key {key!r}: unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    return frozenset((tonic + step) % 12 for step in SCALES[scale])


@dataclass(frozen=True)
class Constraints:
    """Hard limits on generated notes; None means no limit."""

    pitch_classes: frozenset[int] | None = None
    lowest: int = 0
    highest: int = 127
    max_polyphony: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.lowest <= self.highest <= 127:
            raise InputError(f"pitch range must satisfy 0 <= lowest <= highest <= 127, got {self.lowest}-{self.highest}")
        if self.max_polyphony is not None and self.max_polyphony < 1:
            raise InputError(f"max polyphony must be at least 1, got {self.max_polyphony}")
        if not self.pitch_mask().any():
            raise InputError("the key and pitch range together allow no pitch at all")

    def pitch_mask(self) -> np.ndarray:
        """Boolean mask over the 128 pitches: True where a note may be played."""
        mask = np.zeros(128, dtype=bool)
        mask[self.lowest:self.highest + 1] = True
        if self.pitch_classes is not None:
            mask &= np.isin(np.arange(128) % 12, list(self.pitch_classes))
        return mask


SMALL_HEAD = 32  # heads up to this size are sampled in plain Python: numpy's per-call cost dominates there
def nucleus_floor(top_p: float, classes: int = 128) -> float:
    """Weight (relative to the likeliest class) below which a class cannot be in the top-p nucleus.

    If every class under the floor weighs less than (1 - top_p) / classes of the likeliest, all of
    them together weigh less than (1 - top_p) of the total, so the nucleus is complete before any
    of them: dropping them early changes nothing and leaves far fewer candidates to sort.
    """
    return (1.0 - top_p) / classes if top_p < 1.0 else 0.0


class Sampler:
    """Temperature and top-p sampling with a seeded generator and reused buffers.

    Each call costs a few microseconds: small heads (onset, duration, velocity) are sampled in
    plain Python, the pitch head exponentiates in numpy and takes its nucleus from the few
    candidates that carry any weight.
    """

    def __init__(self, seed: int = 0, temperature: float = 1.0, top_p: float = 1.0, max_classes: int = 128) -> None:
        self.rng = np.random.default_rng(seed)
        self._random = random.Random(seed)  # plain floats without numpy's per-call overhead
        self.set(temperature, top_p)
        self._buf = np.empty(max_classes, dtype=np.float64)
        self._forbidden = np.empty(max_classes, dtype=bool)

    def set(self, temperature: float | None = None, top_p: float | None = None) -> None:
        """Change temperature or top-p between notes (a controller may do this live)."""
        if temperature is not None:
            if not (np.isfinite(temperature) and temperature > 0):
                raise InputError(f"temperature must be a positive number, got {temperature}")
            self.temperature = float(temperature)
        if top_p is not None:
            if not (0 < top_p <= 1):
                raise InputError(f"top_p must be in (0, 1], got {top_p}")
            self.top_p = float(top_p)

    def sample(self, logits: np.ndarray, allowed: np.ndarray | None = None) -> int:
        """One class index; `allowed` (bool, same length) must leave at least one class."""
        if len(logits) <= SMALL_HEAD:
            weights = self._small_weights(logits, allowed)
            classes = range(len(weights))
        else:
            classes, weights = self._large_weights(logits, allowed)
        return self.nucleus(classes, weights)

    def _small_weights(self, logits: np.ndarray, allowed: np.ndarray | None) -> list[float]:
        scale = 1.0 / self.temperature
        values = logits.tolist()
        if allowed is not None:
            values = [v if ok else -math.inf for v, ok in zip(values, allowed.tolist())]
        top = max(values)
        return [math.exp((v - top) * scale) for v in values]

    def _large_weights(self, logits: np.ndarray, allowed: np.ndarray | None) -> tuple[list[int], list[float]]:
        n = len(logits)
        p = self._buf[:n]
        np.multiply(logits, 1.0 / self.temperature, out=p)
        if allowed is not None:
            forbidden = self._forbidden[:n]
            np.logical_not(allowed, out=forbidden)
            np.putmask(p, forbidden, -np.inf)
        p -= p.max()
        np.exp(p, out=p)
        classes = np.flatnonzero(p > nucleus_floor(self.top_p, n))
        return classes.tolist(), p[classes].tolist()

    def nucleus(self, classes, weights: list[float]) -> int:
        """Sample from the smallest set of likeliest classes whose weight reaches top_p of the total."""
        if self.top_p < 1.0:
            ranked = sorted(zip(weights, classes), reverse=True)
            limit = self.top_p * sum(weights)
            total, kept = 0.0, 0
            for weight, _ in ranked:
                total += weight
                kept += 1
                if total >= limit:
                    break
            ranked = ranked[:kept]
        else:
            ranked = [(w, c) for w, c in zip(weights, classes) if w > 0.0]
            total = sum(w for w, _ in ranked)
        u = self._random.random() * total
        for weight, choice in ranked:
            u -= weight
            if u < 0.0:
                return int(choice)
        return int(ranked[-1][1])
