"""A lead sheet planned bar by bar for the live mode (realtime/engine/leadsheet.py), in beats, not time.

Bars are counted from the band's first bar (bar 0); a progression plays from the bar it was given on,
from its own first bar, and loops. `plan(bar)` gives that bar's notes: the bass and chords from comp.py's
`Comper` (accompany's patterns and voicings), and with a melody the LSTM's notes (melody.py) whose onsets
fall in the bar, each cut where the next begins. The mode plans a bar one bar ahead, so the model's steps
are never on the way of a note; the planner saves where the comper and the melody stood before each plan,
so a progression replaced before that bar begins (`replace`) plans it again for the new chords. A melody
note already chosen for the new bar under the old chords is dropped there (the melody rests until its next).
Times are beats from bar 0; the mode turns them into moments at its tempo when it hands them over.
"""

from __future__ import annotations

from dataclasses import dataclass

from .comp import Comper, CompStyle
from .melody import Melody
from .progression import Chord, Progression

MODEL_VELOCITY = 80  # the band's `velocity` is to the melody's model velocities what this is to them
MAX_NOTES_A_BAR = 64  # the melody's notes in one bar at most (a guard: polyphony 1 already spaces them)


@dataclass(frozen=True, slots=True)
class BarNote:
    """A planned note: its part ("bass", "chords", "melody"), onset and end in beats from bar 0, pitch, velocity."""

    part: str
    onset: float
    end: float
    pitch: int
    velocity: int


class BarPlanner:
    """The bars of one or two progressions (the one playing, and one replacing it from a bar on)."""

    def __init__(self, progression: Progression, style: CompStyle, velocity: int, melody: Melody | None = None) -> None:
        self.beats_per_bar = progression.beats_per_bar
        self.comper = Comper(style, self.beats_per_bar)
        self.velocity, self.melody = velocity, melody
        self.segments: list[tuple[int, Progression]] = [(0, progression)]  # (first bar, progression), in order
        self._pending: tuple[float, float, int, int] | None = None  # the melody's next note, past the bar planned
        self._saved: tuple[int, tuple] | None = None  # (bar, where everything stood before it was planned)

    @property
    def progression(self) -> Progression:
        """The latest progression given (the one playing, or the one that will from its bar on)."""
        return self.segments[-1][1]

    def reset(self, progression: Progression | None = None) -> None:
        """Bar 0 again, the progression (the latest, unless given) from its first bar; no voicing or melody yet."""
        self.segments = [(0, progression or self.progression)]
        self.comper.reset()
        self._pending = self._saved = None
        if self.melody is not None:
            self.melody.reset()
            self._prepare()

    def segment(self, bar: int) -> tuple[int, Progression]:
        """The progression playing in a bar, and the bar it began on."""
        found = self.segments[0]
        for segment in self.segments:
            if segment[0] <= bar:
                found = segment
        return found

    def place(self, bar: int) -> tuple[int, Progression]:
        """Which bar of its progression a bar is (0-based, looping), and the progression."""
        first, progression = self.segment(bar)
        return (bar - first) % progression.bars, progression

    def chord_at(self, beat: float) -> Chord:
        """The chord sounding at a beat counted from bar 0."""
        first, progression = self.segment(int(beat // self.beats_per_bar))
        return progression.chord_at(beat - first * self.beats_per_bar)

    def plan(self, bar: int) -> list[BarNote]:
        """Every note beginning in this bar, in onset order."""
        self._saved = (bar, self._save())
        if self.melody is not None:
            self.melody.land(bar)  # a live style waiting for this bar (engine/stagecontrols.py)
        first, progression = self.segment(bar)
        start = bar * self.beats_per_bar
        notes = [BarNote(n.part, start + n.onset, start + n.onset + n.beats, n.pitch, self.velocity)
                 for n in self.comper.bar(progression, bar - first)]
        if self.melody is not None:
            notes += self._melody(start + self.beats_per_bar)
        notes.sort(key=lambda n: n.onset)
        return notes

    def replace(self, progression: Progression, bar: int) -> None:
        """`progression` from bar `bar` on, from its first bar; a plan of that bar (the last one made) is undone,
        so the caller plans the bar again. Bars before it keep the progression they had."""
        self.undo(bar)
        before = [segment for segment in self.segments if segment[0] < bar][-1:]
        self.segments = before + [(bar, progression)]
        self._pending = None  # chosen for the old chords
        if self.melody is not None:
            self._prepare()

    def undo(self, bar: int) -> None:
        """A plan of this bar or a later one (the last made) is undone: the caller plans it again."""
        if self._saved is not None and self._saved[0] >= bar:
            self._restore(self._saved[1])
            self._saved = None

    # --- the melody ---------------------------------------------------------------------------------
    def _prepare(self) -> None:
        key = self.progression.key
        chords = [span.chord for _, progression in self.segments for span in progression.spans]
        self.melody.prepare(key, chords, self.chord_at)

    def _melody(self, end: float) -> list[BarNote]:
        """The melody's notes beginning before `end`, each ending by the next one's onset."""
        chosen: list[tuple[float, float, int, int]] = []
        while len(chosen) < MAX_NOTES_A_BAR:
            if self._pending is None:
                self._pending = self.melody.next_note()
            if self._pending[0] >= end - 1e-9:
                break
            chosen.append(self._pending)
            self._pending = None
        out = []
        for i, (onset, beats, pitch, velocity) in enumerate(chosen):
            following = chosen[i + 1][0] if i + 1 < len(chosen) else (self._pending or (onset + beats,))[0]
            stop = min(onset + beats, following)
            if stop > onset + 1e-9:
                level = max(1, min(127, round(velocity * self.velocity / MODEL_VELOCITY)))
                out.append(BarNote("melody", onset, stop, pitch, level))
        return out

    def _save(self) -> tuple:
        melody = self.melody.save() if self.melody is not None else None
        return self.comper.save(), self._pending, melody

    def _restore(self, saved: tuple) -> None:
        comper, self._pending, melody = saved
        self.comper.restore(comper)
        if melody is not None:
            self.melody.restore(melody)
