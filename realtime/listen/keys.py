"""The key of what is played: Krumhansl-Schmuckler over a pitch-class histogram that forgets with time.

Each note-on adds to its pitch class a weight that grows with time, exp(t / key_decay_s), which
is the same as decaying every older note by exp(-age / key_decay_s) but costs O(1) per note; the
histogram is rescaled now and then so the numbers stay finite. The key is the major or minor
Krumhansl-Kessler profile, in any of 12 rotations, that correlates best with the histogram (one
24 x 12, compiled); a new key replaces the current one only when it correlates better by
`key_margin`, so a passing chromatic note does not flip it. Confidence is the correlation (0-1).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..model.controls import MAJOR_PROFILE, MINOR_PROFILE

MODES = ("major", "minor")
_RESCALE_EXPONENT = 30.0  # past e^30 the weights are brought back to 1


def _profiles() -> np.ndarray:
    """24 rows (12 major tonics, then 12 minor), each z-scored, so a dot product / 12 is a correlation."""
    rows = [np.roll(profile, tonic) for profile in (MAJOR_PROFILE, MINOR_PROFILE) for tonic in range(12)]
    table = np.array(rows)
    return (table - table.mean(axis=1, keepdims=True)) / table.std(axis=1, keepdims=True)


_PROFILES = _profiles()


@njit(cache=True, nogil=True)
def _correlations(histogram, profiles, out):
    """Pearson correlation of the histogram with each profile row (rows are z-scored); False if flat."""
    mean = histogram.sum() / 12
    spread = 0.0
    for pc in range(12):
        spread += (histogram[pc] - mean) ** 2
    if spread <= 0:
        return False
    scale = 1.0 / (12 * (spread / 12) ** 0.5)
    for row in range(profiles.shape[0]):
        total = 0.0
        for pc in range(12):
            total += profiles[row, pc] * (histogram[pc] - mean)
        out[row] = total * scale
    return True


class KeyTracker:
    """`add` per note-on (engine thread, O(1)); `estimate` when the key is wanted (compiled, 24 x 12)."""

    def __init__(self, decay_s: float, margin: float) -> None:
        self.decay_ns, self.margin = decay_s * 1e9, margin
        self._histogram = np.zeros(12)
        self._correlations = np.zeros(len(_PROFILES))
        self._heard = 0  # pitch classes heard, one bit each
        self._reference_ns: int | None = None
        self.notes = 0
        self.current: int | None = None  # row of _PROFILES: tonic + 12 * minor
        self.correlation = 0.0
        _correlations(self._histogram, _PROFILES, self._correlations)  # load (or compile) the kernel now

    def reset(self) -> None:
        """Forget every note heard (a new phrase)."""
        self._histogram[:] = 0.0
        self._heard, self._reference_ns, self.notes, self.current, self.correlation = 0, None, 0, None, 0.0

    def add(self, pitch_class: int, at_ns: int) -> None:
        if self._reference_ns is None:
            self._reference_ns = at_ns
        exponent = (at_ns - self._reference_ns) / self.decay_ns
        if exponent > _RESCALE_EXPONENT:  # move the reference up: every weight shrinks alike
            self._histogram *= math.exp(-exponent)
            self._reference_ns, exponent = at_ns, 0.0
        self._histogram[pitch_class] += math.exp(exponent)
        self._heard |= 1 << pitch_class
        self.notes += 1

    def estimate(self) -> tuple[int | None, str, float]:
        """(tonic pitch class, "major"/"minor", confidence); tonic None until three pitch classes were heard."""
        correlations = self._correlations
        if self._heard.bit_count() >= 3 and _correlations(self._histogram, _PROFILES, correlations):
            best = int(np.argmax(correlations))
            if self.current is None or correlations[best] > correlations[self.current] + self.margin:
                self.current = best
            self.correlation = float(correlations[self.current])
        if self.current is None:
            return None, "major", 0.0
        return self.current % 12, MODES[self.current // 12], round(max(0.0, self.correlation), 3)


def key_of(pitches) -> tuple[int | None, str]:
    """The key of a whole passage, every note weighing alike: (tonic, "major"/"minor"); None before three pitch
    classes. `realtime continue` takes the prompt's key this way, the benchmarks a piece's."""
    tracker = KeyTracker(decay_s=1e9, margin=0.0)
    for i, pitch in enumerate(pitches):
        tracker.add(int(pitch) % 12, i)
    tonic, mode, _ = tracker.estimate()
    return tonic, mode
