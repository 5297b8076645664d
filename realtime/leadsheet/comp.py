"""The bass and chords of one bar of a progression, from accompany's patterns and voicings.

Patterns, the bass's steps, its root's placing and the close chord voicings are accompany mode's own
(realtime/engine/comping.py). What a lead sheet adds: the chord is known ahead, and may change inside
a bar. A part strikes where its pattern has an event; an event running over a chord change is cut
there and struck again for the new chord; the bass plays the root on every beat a chord begins. Each
note lasts LEGATO of what is left of its event. A slash chord's bass plays its slash note on
every event. Pure and small, a bar at a time: the live mode plans each bar a bar ahead (live.py), and
`save`/`restore` let it plan one again for a progression that replaced it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.comping import LEGATO, bass_pitch, bass_step, chord_classes, close_voicing, pattern_events, place_root
from .progression import Chord, Progression


@dataclass(frozen=True, slots=True)
class Planned:
    """A note of a bar: its part ("bass", "chords"), onset and length in beats from the bar line, pitch."""

    part: str
    onset: float
    beats: float
    pitch: int


@dataclass(frozen=True)
class CompStyle:
    bass_pattern: str = "quarter"
    chord_pattern: str = "half"
    bass_lowest: int = 36
    bass_highest: int = 60
    chord_lowest: int = 55
    chord_highest: int = 79
    chord_notes: int = 3


class Comper:
    """Plans bar after bar, each voicing moving least from the last and each root near the last root."""

    def __init__(self, style: CompStyle, beats_per_bar: int) -> None:
        self.style, self.beats_per_bar = style, beats_per_bar
        self.bass_events = pattern_events(style.bass_pattern, beats_per_bar)
        self.chord_events = pattern_events(style.chord_pattern, beats_per_bar)
        self._root: int | None = None
        self._voicing: tuple[int, ...] = ()

    def reset(self) -> None:
        self._root, self._voicing = None, ()

    def save(self) -> tuple:
        """Where the voice leading stands (the last root and voicing), for a bar planned again (live.py)."""
        return self._root, self._voicing

    def restore(self, saved: tuple) -> None:
        self._root, self._voicing = saved

    def bar(self, progression: Progression, bar: int) -> list[Planned]:
        """The notes of bar `bar` (0-based, the progression looping) in onset order."""
        first = bar * self.beats_per_bar
        chords = [progression.chord_at(first + beat) for beat in range(self.beats_per_bar)]
        changes = [beat == 0 or progression.changes_at(first + beat) for beat in range(self.beats_per_bar)]
        out: list[Planned] = []
        for part, events in (("bass", self.bass_events), ("chords", self.chord_events)):
            for start, beat, length in self._strikes(events, changes):
                chord = chords[beat]
                pitches = self._bass(chord, start, beat, changes[beat]) if part == "bass" else self._chord(chord)
                out += [Planned(part, float(beat), length * LEGATO, pitch) for pitch in pitches]
        return sorted(out, key=lambda n: (n.onset, n.part, n.pitch))

    def _strikes(self, events, changes) -> list[tuple[int, int, int]]:
        """(its event's first beat, the beat it strikes, beats it lasts) of each strike of a part in the bar."""
        strikes = []
        for start, length in events:
            cuts = [b for b in range(start + 1, start + length) if changes[b]] + [start + length]
            beat = start
            for cut in cuts:
                strikes.append((start, beat, cut - beat))
                beat = cut
        return sorted(strikes, key=lambda s: s[1])

    def _bass(self, chord: Chord, event_start: int, beat: int, change: bool) -> tuple[int, ...]:
        s = self.style
        if change or self._root is None or self._root % 12 != chord.lowest:
            self._root = place_root(chord.lowest, self._root, s.bass_lowest, s.bass_highest)
        if self._root is None:
            return ()
        if change or chord.bass is not None or beat != event_start:  # a chord begins, or a slash note: the root
            return (self._root,)
        step = bass_step(s.bass_pattern, event_start)
        return (bass_pitch(self._root, chord.quality, step, s.bass_highest),)

    def _chord(self, chord: Chord) -> tuple[int, ...]:
        s = self.style
        voicing = close_voicing(chord_classes(chord.root, chord.quality, s.chord_notes), self._voicing,
                                s.chord_lowest, s.chord_highest)
        self._voicing = voicing or self._voicing
        return voicing
