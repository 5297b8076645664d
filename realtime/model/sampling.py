"""Turning logits into notes: hard masks, then temperature and top-p, from a seeded generator.

Masks are applied before anything else so that the top-p nucleus is taken over allowed
choices only; masking after the nucleus could leave nothing to choose. The draw itself is
compiled (`sample_note` in generator.py); this module holds the key and range masks and the sampling settings.
"""

from __future__ import annotations

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


def parse_key(key: str) -> tuple[int, str]:
    """(tonic pitch class, scale name) of a key written like "C major", "F# minor", "Bb dorian" or "A" (major)."""
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
    return tonic % 12, scale


def scale_pitch_classes(tonic: int, scale: str) -> frozenset[int]:
    return frozenset((tonic + step) % 12 for step in SCALES[scale])


def key_pitch_classes(key: str) -> frozenset[int]:
    """Pitch classes of a key written like "C major", "F# minor", "Bb dorian" or "A" (major)."""
    return scale_pitch_classes(*parse_key(key))


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


class Sampler:
    """The seeded random generator and the temperature and top-p that notes are drawn with.

    The drawing itself is compiled (generator.py `sample_note`: masks, temperature and top-p over all four heads);
    this holds what it draws with, so a controller can change temperature or top-p between notes.
    """

    def __init__(self, seed: int = 0, temperature: float = 1.0, top_p: float = 1.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.set(temperature, top_p)

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
