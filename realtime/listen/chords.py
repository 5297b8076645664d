"""Chord templates: which root and quality best explain the pitch classes sounding, and how surely.

Each quality is a set of intervals above the root. A chord's score for a weighted pitch-class
vector is the weight of its tones that sound, minus the weight of the notes it does not explain,
minus a penalty per tone of the chord that is absent (a missing fifth costs less than a missing
third: players leave fifths out), plus a little when the root is the bass (inversions are
recognized by their pitch classes; the bass only breaks ties such as C6 / Am7 or a diminished
seventh's four possible roots). Confidence is the share of the sounding weight the chord
explains times the share of its tones present: 1.0 for a complete chord and nothing else.
The search over 12 roots x the table below is compiled (`match`: a few microseconds).
"""

from __future__ import annotations

import numpy as np
from numba import njit

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# quality -> intervals above the root, and what each costs when it is absent (root, third, fifth, seventh)
QUALITIES: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "maj": ((0, 4, 7), (1.0, 1.0, 0.4)),
    "min": ((0, 3, 7), (1.0, 1.0, 0.4)),
    "dim": ((0, 3, 6), (1.0, 1.0, 1.0)),
    "aug": ((0, 4, 8), (1.0, 1.0, 1.0)),
    "7": ((0, 4, 7, 10), (1.0, 1.0, 0.4, 1.0)),
    "maj7": ((0, 4, 7, 11), (1.0, 1.0, 0.4, 1.0)),
    "m7": ((0, 3, 7, 10), (1.0, 1.0, 0.4, 1.0)),
    "m7b5": ((0, 3, 6, 10), (1.0, 1.0, 1.0, 1.0)),
    "dim7": ((0, 3, 6, 9), (1.0, 1.0, 1.0, 1.0)),
    "sus4": ((0, 5, 7), (1.0, 1.0, 0.4)),
}
QUALITY_NAMES = tuple(QUALITIES)
SUFFIX = {"maj": "", "min": "m", "dim": "dim", "aug": "aug", "7": "7", "maj7": "maj7", "m7": "m7",
          "m7b5": "m7b5", "dim7": "dim7", "sus4": "sus4"}
BASS_BONUS = 0.3  # in units of one note's weight: enough to break a tie, never to beat a better fit
PRESENT = 0.05  # a pitch class weighing less than this counts as absent


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows = (quality, root): +1 on chord tones, -1 elsewhere; absent-tone penalties; sizes; roots; order."""
    rows = len(QUALITIES) * 12
    signs, penalties = -np.ones((rows, 12)), np.zeros((rows, 12))
    sizes, roots, order = np.zeros(rows), np.zeros(rows, np.int64), np.zeros(rows)
    for q, (intervals, costs) in enumerate(QUALITIES.values()):
        for root in range(12):
            row = q * 12 + root
            for interval, cost in zip(intervals, costs):
                signs[row, (root + interval) % 12] = 1.0
                penalties[row, (root + interval) % 12] = cost
            sizes[row], roots[row], order[row] = len(intervals), root, q
    return signs, penalties, sizes, roots, -1e-6 * order  # the table's order breaks exact ties


_SIGNS, _PENALTIES, _SIZES, _ROOTS, _ORDER = _tables()


@njit(cache=True, nogil=True)
def _match(weights, signs, penalties, order, sizes, bass, bass_bonus, present_at):
    """(best row, confidence) for these weights, the score as the module docstring says; (-1, 0) under 2 classes."""
    total, classes = 0.0, 0
    for pc in range(12):
        total += weights[pc]
        classes += weights[pc] >= present_at
    if classes < 2:
        return -1, 0.0
    best, best_score = 0, -1e300
    for row in range(signs.shape[0]):
        score = order[row]
        for pc in range(12):
            score += signs[row, pc] * weights[pc]
            if weights[pc] < present_at:
                score -= penalties[row, pc]
        if row % 12 == bass:
            score += bass_bonus
        if score > best_score:
            best, best_score = row, score
    explained, sounding = 0.0, 0
    for pc in range(12):
        if signs[best, pc] > 0:
            explained += weights[pc]
            sounding += weights[pc] >= present_at
    return best, explained / total * sounding / sizes[best]


def match(weights: np.ndarray, bass: int | None = None) -> tuple[int, str, float] | None:
    """(root pitch class, quality, confidence 0-1) for a 12-vector of pitch-class weights; None under 2 classes."""
    best, confidence = _match(weights, _SIGNS, _PENALTIES, _ORDER, _SIZES, -1 if bass is None else bass, BASS_BONUS,
                              PRESENT)
    return None if best < 0 else (int(_ROOTS[best]), QUALITY_NAMES[best // 12], float(confidence))


def chord_name(root: int | None, quality: str) -> str:
    """'C', 'F#m', 'G7', 'Bdim' ...; '-' for no chord."""
    return "-" if root is None else PITCH_NAMES[root] + SUFFIX[quality]
