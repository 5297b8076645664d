"""The accompaniment's beat grid: where the player's beats and bar lines fall, and how fast they come.

A grid is a beat length and an anchor (a moment a bar line fell on); beat k is `anchor + k * beat`.
Three sources steer it, the best one available winning:

- the listener's tempo while its tracker is locked (realtime/listen/tempo.py): its beat length and
  phase, at the grid's own metrical level (the listener's beat times the power of two nearest the
  grid's: one chord a bar locks the listener on a bar or a half bar, not on the beat); the bar
  numbering stays the grid's own;
- the chords the player strikes (two or more notes within the listener's CHORD_GAP_NS): the time
  between two strikes is taken as 1, 2, a half bar, a bar, two or four bars of beats, whichever gives
  the beat nearest the grid's (a bar is preferred: players change chords once a bar most often). A
  first such estimate is taken at once; after that an estimate within AGREE of the grid refines it
  (halfway), and one that disagrees is taken only when the next interval says the same (a fermata,
  a pause or one rushed chord does not move the grid);
- before either: the patch's `[engine] tempo_bpm`.

A strike also places the bar: one within NEAR of a grid beat falls on it (the phase follows the strike,
unless the listener is locked) and stays beat 1 or the bar's middle beat if it is one of those, else
becomes beat 1; a strike off the grid starts a bar of its own. Pure arithmetic, no clock: the mode
hands every moment in.
"""

from __future__ import annotations

import math

NEAR = 0.25  # beats: a strike this close to a beat of the grid falls on that beat
AGREE = 0.08  # a strike interval within 8% of the grid's beat count refines the grid
BAR_PREFERENCE = 0.5  # octaves of tempo: the bar wins over another count unless that fits this much better
SLOWEST_NS, FASTEST_NS = 60e9 / 40, 60e9 / 240  # beat lengths the strikes may give (40-240 BPM)


class BeatGrid:
    """Beats and bars in ns, steered by the listener's locked tempo or by the chords struck."""

    def __init__(self, ns_per_beat: float, beats_per_bar: int) -> None:
        self.prior_ns_per_beat = self.ns_per_beat = float(ns_per_beat)
        self.beats_per_bar = beats_per_bar
        half = [beats_per_bar // 2] if beats_per_bar % 2 == 0 and beats_per_bar > 2 else []
        self.spans = tuple(sorted({1, 2, *half, beats_per_bar, 2 * beats_per_bar, 4 * beats_per_bar}))
        self.middle = beats_per_bar // 2 if beats_per_bar % 2 == 0 else None  # a bar's other strong beat
        self.anchor_ns = 0
        self.started = False
        self.source = "patch"  # "patch", "chords" or "listener": what the beat length comes from
        self._last_strike_ns: int | None = None
        self._candidate_ns: float | None = None  # an interval's beat that disagreed with the grid, waiting
        self._followed: tuple[float, int] | None = None

    # --- reading ---------------------------------------------------------------------------------------
    @property
    def bpm(self) -> float:
        return 60e9 / self.ns_per_beat

    def beat_at(self, at_ns: int) -> float:
        """Beats since the anchor (a bar line) at a moment; negative before it."""
        return (at_ns - self.anchor_ns) / self.ns_per_beat

    def time_of(self, beat: int) -> int:
        return round(self.anchor_ns + beat * self.ns_per_beat)

    def number(self, beat: int) -> int:
        """The beat's place in its bar, 0 for beat 1."""
        return beat % self.beats_per_bar

    def bar_ns(self) -> float:
        return self.ns_per_beat * self.beats_per_bar

    def next_bar_ns(self, after_ns: int) -> int:
        """The first bar line at or after a moment."""
        bars = math.ceil((after_ns - self.anchor_ns) / self.bar_ns())
        return round(self.anchor_ns + bars * self.bar_ns())

    # --- steering --------------------------------------------------------------------------------------
    def start(self, at_ns: int) -> None:
        """A bar begins here (the accompaniment starts, or starts again after a rest)."""
        self.anchor_ns, self.started = at_ns, True

    def stop(self) -> None:
        """The accompaniment rests: the next strike starts a bar; the tempo learned is kept."""
        self.started = False
        self._last_strike_ns = self._candidate_ns = None

    def follow(self, ns_per_beat: float, beat_ns: int) -> None:
        """The listener is locked: its beat length (at the grid's level) and a moment a beat fell on; the bar
        numbering is kept."""
        if self._followed == (ns_per_beat, beat_ns):
            return
        self._followed = (ns_per_beat, beat_ns)
        level = 2.0 ** min(2, max(-2, round(math.log2(self.ns_per_beat / ns_per_beat))))
        if self.started:
            beat = round((beat_ns - self.anchor_ns) / self.ns_per_beat)  # the grid's beat nearest the listener's
            ours = self.anchor_ns + beat * self.ns_per_beat
            on_ns = beat_ns + round((ours - beat_ns) / ns_per_beat) * ns_per_beat  # ... on the listener's beats
            self.anchor_ns = round(on_ns - self.number(beat) * ns_per_beat * level)
        self.ns_per_beat, self.source = float(ns_per_beat * level), "listener"

    def unfollow(self) -> None:
        """The listener lost its lock: the grid keeps the last beat it had, now steered by the strikes."""
        if self.source == "listener":
            self.source, self._followed = "chords", None

    def strike(self, at_ns: int) -> None:
        """A chord struck at this moment: the tempo (unless the listener is locked) and the bar line."""
        if not self.started:
            self.start(at_ns)
            self._last_strike_ns = at_ns
            return
        previous, self._last_strike_ns = self._last_strike_ns, at_ns
        if self.source != "listener" and previous is not None and self._interval(at_ns - previous):
            self.anchor_ns = at_ns  # a new tempo: its first bar begins with this strike
            return
        beat_float = self.beat_at(at_ns)
        beat = round(beat_float)
        if abs(beat_float - beat) > NEAR:
            self.anchor_ns = at_ns  # off the grid: the player starts a bar here
            return
        number = self.number(beat)
        if number not in (0, self.middle):
            number = 0  # a chord struck on a weak beat: the player's bar begins there
        on_ns = self.time_of(beat) if self.source == "listener" else at_ns
        self.anchor_ns = round(on_ns - number * self.ns_per_beat)

    def _interval(self, interval_ns: int) -> bool:
        """Steer the beat by the time between two strikes; True when it moved to a new tempo."""
        best, best_cost = None, math.inf
        for span in self.spans:
            beat = interval_ns / span
            cost = abs(math.log2(beat / self.ns_per_beat)) + (0 if span == self.beats_per_bar else BAR_PREFERENCE)
            if FASTEST_NS <= beat <= SLOWEST_NS and cost < best_cost:
                best, best_cost = beat, cost
        if best is None:
            return False
        if abs(best / self.ns_per_beat - 1) <= AGREE:
            self.ns_per_beat += 0.5 * (best - self.ns_per_beat)
            self.source, self._candidate_ns = "chords", None
            return False
        candidate, self._candidate_ns = self._candidate_ns, best
        if self.source == "patch" or (candidate is not None and abs(best / candidate - 1) <= AGREE):
            self.ns_per_beat, self.source, self._candidate_ns = best, "chords", None
            return True
        return False
