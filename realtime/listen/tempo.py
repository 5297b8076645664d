"""Tempo and beat phase from a player's onsets, or from an incoming MIDI clock.

`TempoTracker` keeps the last ONSETS onsets (notes within CHORD_GAP_NS of each other are one onset)
and, after each new one, scores every candidate tempo on a grid (40-240 BPM, ~1.9% apart) against
the onsets heard since the tempo last changed. Onset weights count in the candidate's own beats:
full for the last FLAT_BEATS, then exp(-age / memory_beats). For a candidate, each onset has a phase
on the beat circle, and the score is the product of:

- alignment: the weighted mean of (cos(phase - p) + cos(2 (phase - p))) / 2 at the best grid
  offset p: 1 on the beat, 0 on the half beat (eighths neither help nor hurt), below 0 elsewhere,
  so half the true tempo (whose half beats carry real beats) scores low;
- fill, squared: the weighted share of the window's beats that an onset falls on, so twice the
  true tempo (every other beat empty) scores low;
- a wide prior (PRIOR_WIDTH octaves) around the patch's tempo, which only leans.

The winner is refined by a weighted least-squares line through the onsets near its half-beat grid:
the tempo and the moment of a beat (the phase anchor). Locking needs two estimates in a row that
agree within AGREE and score LOCK_SCORE, from LOCK_ONSETS onsets at least. Once locked:

- an estimate that disagrees is ignored up to MAX_STRIKES times in a row (a syncopation);
- the metrical level is kept: of the winner, half and twice it, the one nearest the last tempo
  locked is taken while it fits at least LEVEL_RATIO as well (four eighths fit twice the tempo
  just as well as the tempo);
- a tempo change: when the last RECENT onsets alone fit another tempo CHANGE_RATIO times better
  than the locked one twice running (or CLEAR_RATIO times better once), the window restarts at them
  and locks there at once: with one onset a beat, three or four beats after the change.

A rest longer than REST_BEATS beats of the current estimate starts the window over at the first
onset after it: the notes before a phrase gap tell nothing about where the beats fall in the next
phrase, and four onsets spanning the gap fit some slow tempo (a 4 s rest after 150 ms notes read as
40 BPM and held there). The lock and its metrical level stay: a player mostly comes back at the tempo
they left, and the new phrase's own onsets move the lock as a tempo change would.

The scoring is compiled (numba, no allocation) and runs once per onset on the engine thread
(`update`, ~30 us here). `ClockTempo` reads a MIDI clock instead (realtime/io/midiclock.py counts).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..clock import TempoClock
from ..io.midiclock import MidiClockIn

ONSETS = 16  # 4-16 beats of playing: enough, since older onsets weigh little
CHORD_GAP_NS = 40_000_000  # notes starting this close together are one onset (a chord, a strum)
CANDIDATE_BPM = np.geomspace(40.0, 240.0, 96)  # ~1.9% apart; the fitted line refines the winner
LOCK_SCORE = 0.35
AGREE = 0.06  # two estimates within 6% of each other: locked
MAX_STRIKES = 3  # disagreeing estimates in a row that end a lock
RECENT = 4  # onsets enough for an estimate: a tempo change is judged on the last four alone
LEVEL_RATIO = 0.3  # half or twice the winner, scoring this share of it, is as good an answer
CHANGE_RATIO = 1.5  # the recent onsets must fit another tempo this much better than the locked one, twice running
CLEAR_RATIO = 5.0  # ... or this much better once
FIT_TOLERANCE = 0.12  # onsets within this many beats of a half-beat point steer the fitted line
PRIOR_WIDTH = 1.5  # octaves: the prior around the patch's tempo only leans; the onsets decide
LOCK_ONSETS = 6  # a first lock needs this many onsets (after a tempo change, the four that showed it)
FLAT_BEATS = 2.0  # the last two beats count fully, so whether the newest onset is on the beat matters less
REST_BEATS = 8.0  # a gap this many beats long (two bars of 4/4) ends a phrase: the window starts over after it
PHASES = 32  # grid offsets tried per candidate
_PHASE_COS = np.cos(np.arange(PHASES) * 2 * math.pi / PHASES)
_PHASE_SIN = np.sin(np.arange(PHASES) * 2 * math.pi / PHASES)
TABLE = 256  # phases are looked up in 1/256 of a beat: math.cos costs more than the rest of a step
_COS, _SIN = np.cos(np.arange(TABLE) * 2 * math.pi / TABLE), np.sin(np.arange(TABLE) * 2 * math.pi / TABLE)


@njit(cache=True, nogil=True)
def _weight(beats, memory_beats):
    """How much an onset this many beats (<= 0) before the newest counts: fully for FLAT_BEATS, then fading."""
    return 1.0 if beats >= -FLAT_BEATS else math.exp((beats + FLAT_BEATS) / memory_beats)


@njit(cache=True, nogil=True)
def _grid_weight(beat, first, memory_beats):
    """The summed weight of the grid beats at beat, beat - 1, ... down to first (closed form)."""
    if beat < first:
        return 0.0
    beats = math.floor(beat - first) + 1
    flat = min(beats, max(0, math.floor(beat + FLAT_BEATS) + 1))  # the beats in the flat part count 1 each
    rest = beats - flat
    if rest <= 0:
        return float(flat)
    q = math.exp(-1.0 / memory_beats)
    return flat + _weight(beat - flat, memory_beats) * (1 - q ** rest) / (1 - q)


@njit(cache=True, nogil=True)
def _score_tempi(ages_s, n, periods_s, memory_beats, log_bpm, centre, width, weights, cos, sin, scores, offsets):
    """Each candidate's score and best grid offset (in beats from the newest onset); no allocation."""
    table = len(_COS)
    for c in range(len(periods_s)):
        total = s1r = s1i = s2r = s2i = 0.0
        for i in range(n):
            beats = -ages_s[i] / periods_s[c]
            w = weights[i] = _weight(beats, memory_beats)
            k = int(beats * table) & (table - 1)  # the phase, in 1/TABLE of a beat (TABLE is a power of 2)
            cos[i], sin[i] = _COS[k], _SIN[k]
            total += w
            s1r += w * cos[i]
            s1i += w * sin[i]
            s2r += w * (2 * cos[i] * cos[i] - 1)
            s2i += w * 2 * sin[i] * cos[i]
        best, best_k = -1e300, 0
        for k in range(PHASES):  # cos(a - p) + cos(2 (a - p)) summed, at each grid offset p
            fit = s1r * _PHASE_COS[k] + s1i * _PHASE_SIN[k] + s2r * _PHASE_COS[2 * k % PHASES] + s2i * _PHASE_SIN[2 * k % PHASES]
            if fit > best:
                best, best_k = fit, k
        alignment = best / (2 * total)
        pc, ps = _PHASE_COS[best_k], _PHASE_SIN[best_k]
        on_beat = 0.0
        for i in range(n):
            near = (1 + cos[i] * pc + sin[i] * ps) / 2
            near *= near
            on_beat += weights[i] * near * near
        offset = best_k / PHASES if best_k <= PHASES // 2 else best_k / PHASES - 1
        beat = offset if offset <= 0 else offset - 1  # the grid's last beat at or before the newest onset
        grid = _grid_weight(beat, -ages_s[0] / periods_s[c] - 0.25, memory_beats)  # the window's beats, weighed
        fill = min(1.0, on_beat / grid) if grid > 0 else 0.0
        prior = math.exp(-0.5 * ((log_bpm[c] - centre) / width) ** 2)
        scores[c] = max(alignment, 0.0) * fill * fill * prior
        offsets[c] = offset


@njit(cache=True, nogil=True)
def _ages(onsets, count, n, newest_ns, out):
    """The last n onsets of the ring, oldest first, in seconds before the newest."""
    for i in range(n):
        out[i] = (newest_ns - onsets[(count - n + i) % len(onsets)]) / 1e9


@njit(cache=True, nogil=True)
def _fit_line(ages_s, n, period_s, offset_beats, memory_beats, tolerance):
    """(period, offset) in seconds from a weighted line through the onsets near the half-beat grid."""
    sw = sx = sy = sxx = sxy = 0.0
    lowest, highest, used = 1e300, -1e300, 0
    for i in range(n):
        beats = -ages_s[i] / period_s - offset_beats
        half = round(2 * beats) / 2
        if abs(beats - half) > tolerance:
            continue
        w = _weight(beats + offset_beats, memory_beats)
        x, y = half, -ages_s[i]
        sw += w
        sx += w * x
        sy += w * y
        sxx += w * x * x
        sxy += w * x * y
        lowest, highest, used = min(lowest, x), max(highest, x), used + 1
    if used < 3 or highest - lowest < 1.0:
        return period_s, offset_beats * period_s
    slope = (sxy - sx * sy / sw) / (sxx - sx * sx / sw)
    if abs(slope / period_s - 1) >= 0.05:  # the line may sharpen the grid, never replace it
        return period_s, offset_beats * period_s
    return slope, (sy - slope * sx) / sw


class TempoTracker:
    """Onsets in (`onset`, O(1)), an estimate out (`update` after a new onset): bpm, locked, anchor."""

    def __init__(self, prior_bpm: float, memory_beats: float) -> None:
        self.prior_bpm, self.memory_beats = prior_bpm, memory_beats
        self._onsets = np.zeros(ONSETS, np.int64)
        self.count = 0  # onsets ever heard
        self._last_ns = -(1 << 62)
        self.pending = False  # an onset arrived since the last update
        self.bpm: float | None = None
        self.locked = False
        self.anchor_ns = 0  # a moment a beat fell on
        self.ns_per_beat = 60e9 / prior_bpm
        self.score = 0.0
        self.changes = 0  # tempo changes followed
        self._previous_bpm: float | None = None  # the last estimate that scored LOCK_SCORE
        self._change_bpm: float | None = None  # the last recent-onsets estimate that contradicted the lock
        self.strikes = 0  # estimates in a row that disagreed with the lock
        self._start = 0  # the first onset (counted from 0) at the current tempo
        self._level_bpm: float | None = None  # the last tempo locked: its metrical level is kept
        self._ages_s = np.zeros(ONSETS)
        self._weights, self._cos, self._sin = np.zeros(ONSETS), np.zeros(ONSETS), np.zeros(ONSETS)
        self._scores, self._offsets = np.zeros(len(CANDIDATE_BPM)), np.zeros(len(CANDIDATE_BPM))
        self._periods_s = 60.0 / CANDIDATE_BPM
        self._log_bpm = np.log2(CANDIDATE_BPM)
        # for each candidate, the lower of the two candidates around half and around twice it (-1: none)
        step = (len(CANDIDATE_BPM) - 1) / (self._log_bpm[-1] - self._log_bpm[0])  # candidates per octave
        self._octave_down, self._octave_up = (
            [int(math.floor(i + sign * step)) if 0 <= i + sign * step <= len(CANDIDATE_BPM) - 2 else -1
             for i in range(len(CANDIDATE_BPM))] for sign in (-1, 1))
        self._best(self._ages_s[:4])  # compile (or load the compiled kernel) now, not at the first note

    def onset(self, at_ns: int) -> None:
        """A note-on (engine thread): a new onset unless it belongs to the chord just begun."""
        if at_ns - self._last_ns < CHORD_GAP_NS:
            return
        if at_ns - self._last_ns > REST_BEATS * self.ns_per_beat:  # a new phrase: only its own onsets count
            self._start, self._change_bpm, self._previous_bpm, self.strikes = self.count, None, None, 0
        self._onsets[self.count % ONSETS] = at_ns
        self.count += 1
        self._last_ns = at_ns
        self.pending = True

    def _best(self, ages_s: np.ndarray) -> tuple[int, float]:
        """The best candidate for these onsets (oldest first, seconds before the newest) and its score."""
        _score_tempi(ages_s, len(ages_s), self._periods_s, self.memory_beats, self._log_bpm,
                     math.log2(self.prior_bpm), PRIOR_WIDTH, self._weights, self._cos, self._sin, self._scores,
                     self._offsets)
        best = int(np.argmax(self._scores))
        if self._level_bpm is not None:
            best = self._same_level(best)
        return best, float(self._scores[best])

    def _same_level(self, best: int) -> int:
        """Of the winner, half and twice it, the one nearest the last tempo locked that still fits well.

        Four eighths fit twice the tempo as well as they fit the tempo itself: a player who changes
        tempo keeps the metrical level, so when the onsets leave the level open, continuity decides.
        """
        level = math.log2(self._level_bpm)
        chosen, distance = best, abs(self._log_bpm[best] - level)
        for neighbours in (self._octave_down, self._octave_up):
            low = neighbours[best]
            if low < 0:
                continue  # outside the candidates
            index = low if self._scores[low] >= self._scores[low + 1] else low + 1  # the better of the two nearest
            gap = abs(self._log_bpm[index] - level)
            if gap < distance and self._scores[index] >= LEVEL_RATIO * self._scores[best]:
                chosen, distance = index, gap
        return chosen

    def update(self) -> None:
        """Re-estimate from the onsets since the tempo last changed (call after `onset`)."""
        self.pending = False
        n = min(self.count - self._start, ONSETS)
        if n < RECENT:
            return
        self._fill_ages(n)
        restarted = self.locked and n > RECENT and self._changed(self._ages_s[n - RECENT:n])
        if restarted:  # the tempo changed: start over from the onsets that showed it
            self._start, n = self.count - RECENT, RECENT
            self.locked, self._previous_bpm, self.changes = False, self._change_bpm, self.changes + 1
            self._fill_ages(n)
        best, self.score = self._best(self._ages_s[:n])
        period_s, offset_s = _fit_line(self._ages_s, n, self._periods_s[best], self._offsets[best],
                                       self.memory_beats, FIT_TOLERANCE)
        self._decide(60.0 / period_s, self._last_ns + round(offset_s * 1e9), restarted or n >= LOCK_ONSETS)

    def _fill_ages(self, n: int) -> None:
        _ages(self._onsets, self.count, n, self._last_ns, self._ages_s)

    def _changed(self, recent_ages_s: np.ndarray) -> bool:
        """Do the last RECENT onsets fit another tempo far better than the locked one (twice, or by far once)?"""
        best, score = self._best(recent_ages_s)
        locked_index = int(np.argmin(np.abs(self._log_bpm - math.log2(self.bpm))))
        bpm = float(CANDIDATE_BPM[best])
        contradicts = (score >= LOCK_SCORE and score > CHANGE_RATIO * self._scores[locked_index]
                       and abs(bpm / self.bpm - 1) > AGREE)
        previous, self._change_bpm = self._change_bpm, (bpm if contradicts else None)
        clear = score > CLEAR_RATIO * self._scores[locked_index]  # no need to wait for a second onset
        return contradicts and (clear or previous is not None and abs(bpm / previous - 1) <= 2 * AGREE)

    def _decide(self, bpm: float, anchor_ns: int, lockable: bool) -> None:
        """Follow an estimate that agrees with the lock; lock on two agreeing in a row; outlast outliers."""
        previous, self._previous_bpm = self._previous_bpm, (bpm if self.score >= LOCK_SCORE else None)
        if self.locked and abs(bpm / self.bpm - 1) > AGREE:
            self.strikes += 1  # one odd estimate (a syncopation, a fermata) does not move a lock
            if self.strikes < MAX_STRIKES:
                return
            self.locked = False
        self.strikes = 0
        if lockable and previous is not None and self.score >= LOCK_SCORE and abs(bpm / previous - 1) <= 2 * AGREE:
            self.locked = True
        if self.locked:
            self._level_bpm = bpm
        self.bpm, self.ns_per_beat, self.anchor_ns = bpm, 60e9 / bpm, anchor_ns


class ClockTempo:
    """Tempo and phase from an incoming MIDI clock: `feed` raw messages from the input's thread."""

    def __init__(self, prior_bpm: float) -> None:
        self.tempo = TempoClock(prior_bpm)
        self.follower = MidiClockIn(self.tempo)

    def feed(self, data: bytes, at_ns: int) -> None:
        self.follower.feed(data, at_ns)

    @property
    def pulses(self) -> int:
        return self.follower.pulses

    def reading(self) -> tuple[float | None, bool, int, float]:
        """(bpm, locked, a beat's moment, ns per beat): locked while the clock runs with a known tempo."""
        bpm = self.follower.tempo_bpm
        return bpm, bool(self.follower.running and bpm is not None), self.tempo.ns_at(0.0), self.tempo.ns_per_beat
