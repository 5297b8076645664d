"""The bars two players trade on: bar 0 begins at the player's first note, at the patch's tempo, until the
listener hears the player's tempo; then its beat length and phase, the bars still counted from that note.

A grid is a beat length and an origin: a moment bar `origin_bar` began on; bar b (fractions allowed) begins
at `origin_ns + (b - origin_bar) * bar`. Following the listener (its tracker locked on the playing, or a
MIDI clock): the beat is the listener's at the grid's own metrical level (times the power of two that brings it
nearest the grid's beat, as realtime/engine/beatgrid.py does: a player of eighths may lock the tracker on
them; so the patch's tempo must be within a factor 1.4 of the player's, or the bars are half or twice theirs), and the
origin moves to the listener's beat nearest to it. The first time, that origin is the player's first note
itself, so the bar numbering the patch's wrong tempo gave is replaced by the player's from the start; from
then on the origin is first moved to the last bar line before now, so each correction is local (a small
tempo drift over many bars never slips the count by a beat); a tempo more than AGREE away from the one
followed is taken only once the listener has said it for a bar (a tracker that locks on a wrong tempo for a
moment, after a pause, must not move every later bar line). Pure arithmetic, no clock.
"""

from __future__ import annotations

import math

AGREE = 0.06  # a listener's tempo this close to the one followed is taken at once; another must stand a bar


class BarGrid:
    """Bar lines in ns: from the player's first note, at the patch's tempo or the listener's."""

    def __init__(self, ns_per_beat: float, beats_per_bar: int) -> None:
        self.ns_per_beat = float(ns_per_beat)
        self.beats_per_bar = beats_per_bar
        self.origin_ns, self.origin_bar = 0, 0
        self.source = "patch"  # "patch" or "listener": what the beat length and phase come from
        self._followed: tuple[float, int] | None = None
        self._candidate: tuple[float, int] | None = None  # a tempo that disagrees, and since when it has

    @property
    def bpm(self) -> float:
        return 60e9 / self.ns_per_beat

    @property
    def bar_ns(self) -> float:
        return self.ns_per_beat * self.beats_per_bar

    def start(self, at_ns: int) -> None:
        """Bar 0 begins here (the player's first note of an exchange, or the engine's own first bar)."""
        self.origin_ns, self.origin_bar = at_ns, 0  # (the listener's last beat, heard before, does not move it:
        # its next estimate, which hears this note, will)

    def time_of_bar(self, bar: float) -> int:
        """When bar `bar` (a fraction: that far into it) begins."""
        return round(self.origin_ns + (bar - self.origin_bar) * self.bar_ns)

    def bar_at(self, at_ns: int) -> float:
        """Which bar a moment falls in, with the fraction of it gone."""
        return self.origin_bar + (at_ns - self.origin_ns) / self.bar_ns

    def next_bar_ns(self, after_ns: int) -> int:
        """The first bar line at or after a moment."""
        return self.time_of_bar(math.ceil(self.bar_at(after_ns) - 1e-9))

    def follow(self, ns_per_beat: float, beat_ns: int, now_ns: int) -> None:
        """The listener's beat (its length, a moment one fell on): the grid takes it at its own level; a tempo
        that differs from the one followed by more than AGREE only once it has stood for a bar."""
        if self._followed == (ns_per_beat, beat_ns):
            return
        level = 2.0 ** min(2, max(-2, round(math.log2(self.ns_per_beat / ns_per_beat))))
        if self.source == "listener" and abs(ns_per_beat * level / self.ns_per_beat - 1) > AGREE:
            since = self._candidate[1] if self._candidate and abs(ns_per_beat / self._candidate[0] - 1) <= AGREE \
                else now_ns
            self._candidate = (ns_per_beat, since)
            if now_ns - since < self.bar_ns:
                return
        self._followed, self._candidate = (ns_per_beat, beat_ns), None
        if self.source == "listener":  # the count is the player's already: correct it at the last bar line
            bars = math.floor((now_ns - self.origin_ns) / self.bar_ns)
            if bars > 0:
                self.origin_ns = round(self.origin_ns + bars * self.bar_ns)
                self.origin_bar += bars
        self.origin_ns = round(beat_ns + round((self.origin_ns - beat_ns) / ns_per_beat) * ns_per_beat)
        self.ns_per_beat, self.source = float(ns_per_beat * level), "listener"
