"""The key of what is played: Krumhansl-Schmuckler over a pitch-class histogram that forgets with time.

Each note-on adds to its pitch class a weight that grows with time, exp(t / key_decay_s), which
is the same as decaying every older note by exp(-age / key_decay_s) but costs O(1) per note; the
histogram is rescaled now and then so the numbers stay finite. The key is the major or minor
Krumhansl-Kessler profile, in any of 12 rotations, that correlates best with the histogram (one
24 x 12 product); a new key replaces the current one only when it correlates better by
`key_margin`, so a passing chromatic note does not flip it. Confidence is the correlation (0-1).
"""

from __future__ import annotations

import math

import numpy as np

from ..model.controls import MAJOR_PROFILE, MINOR_PROFILE

MODES = ("major", "minor")
_RESCALE_EXPONENT = 30.0  # past e^30 the weights are brought back to 1


def _profiles() -> np.ndarray:
    """24 rows (12 major tonics, then 12 minor), each z-scored, so a dot product / 12 is a correlation."""
    rows = [np.roll(profile, tonic) for profile in (MAJOR_PROFILE, MINOR_PROFILE) for tonic in range(12)]
    table = np.array(rows)
    return (table - table.mean(axis=1, keepdims=True)) / table.std(axis=1, keepdims=True)


_PROFILES = _profiles()


class KeyTracker:
    """`add` per note-on (engine thread, O(1)); `estimate` when the key is wanted (a 24 x 12 product)."""

    def __init__(self, decay_s: float, margin: float) -> None:
        self.decay_ns, self.margin = decay_s * 1e9, margin
        self._histogram = [0.0] * 12
        self._reference_ns: int | None = None
        self.notes = 0
        self.current: int | None = None  # row of _PROFILES: tonic + 12 * minor
        self.correlation = 0.0

    def add(self, pitch_class: int, at_ns: int) -> None:
        if self._reference_ns is None:
            self._reference_ns = at_ns
        exponent = (at_ns - self._reference_ns) / self.decay_ns
        if exponent > _RESCALE_EXPONENT:  # move the reference up: every weight shrinks alike
            shrink = math.exp(-exponent)
            self._histogram = [h * shrink for h in self._histogram]
            self._reference_ns, exponent = at_ns, 0.0
        self._histogram[pitch_class] += math.exp(exponent)
        self.notes += 1

    def estimate(self) -> tuple[int | None, str, float]:
        """(tonic pitch class, "major"/"minor", confidence); tonic None until three pitch classes were heard."""
        histogram = np.array(self._histogram)
        if np.count_nonzero(histogram) >= 3:
            z = (histogram - histogram.mean()) / histogram.std()
            correlations = _PROFILES @ z / 12.0
            best = int(np.argmax(correlations))
            if self.current is None or correlations[best] > correlations[self.current] + self.margin:
                self.current = best
            self.correlation = float(correlations[self.current])
        if self.current is None:
            return None, "major", 0.0
        return self.current % 12, MODES[self.current // 12], round(max(0.0, self.correlation), 3)
