"""Note events: what the engine hears and plays, in live milliseconds or grid beats.

A `Note` is one sounding note described relative to the note before it (inter-onset
time), the way the model sees music. A `NoteSequence` gives those numbers a unit:
milliseconds for expressive live playing, beats for grid music, with a tempo that
converts between the two. MIDI files convert both ways through mido.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from .errors import InputError

TimeUnit = Literal["ms", "beats"]


@dataclass(frozen=True, slots=True)
class Note:
    """One note: pitch and velocity (MIDI 0-127), time since the previous onset, duration."""

    pitch: int
    velocity: int
    ioi: float
    duration: float

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise InputError(f"note pitch must be 0-127, got {self.pitch}")
        if not 1 <= self.velocity <= 127:
            raise InputError(f"note velocity must be 1-127, got {self.velocity}")
        if not (self.ioi >= 0 and self.duration > 0):
            raise InputError(f"note times must be ioi >= 0 and duration > 0, got {self.ioi}, {self.duration}")


@dataclass(frozen=True, slots=True)
class NoteMessage:
    """A MIDI-level note-on or note-off as it crosses a port (velocity 0 means off)."""

    pitch: int
    velocity: int
    channel: int = 0

    @property
    def is_on(self) -> bool:
        return self.velocity > 0


@dataclass(frozen=True, slots=True)
class ControlChange:
    """A MIDI control change (controller 0-127, value 0-127)."""

    control: int
    value: int
    channel: int = 0


@dataclass(frozen=True, slots=True)
class NamedControl:
    """A named control value, e.g. from OSC `/control/temperature 0.8`; a patch maps names to effects."""

    name: str
    value: float


@dataclass(frozen=True, slots=True)
class LearnRequest:
    """MIDI learn: bind the next moved controller to this control target (OSC `/learn temperature`)."""

    target: str


@dataclass(frozen=True, slots=True)
class ModeRequest:
    """Play another mode from the next bar on: by name (OSC `/mode accompany`) or by its number in the
    patch's `[engine] modes` list (a MIDI program change, 0-based as on the wire)."""

    name: str | None = None
    program: int | None = None


@dataclass(frozen=True, slots=True)
class MemoryRequest:
    """Do something with the duet's memory of the player now: "save" it to its file (OSC `/memory/save`)."""

    action: str = "save"


@dataclass(frozen=True, slots=True)
class ShapeRequest:
    """Shape the duet's next answer: `what` is "rhythm" (OSC `/rhythm "x.x.xx.x"`) or "mood" (`/mood calm`); or
    "style" (`/style irish`): the stage model's style from every mode's next bar line."""

    what: str
    text: str


@dataclass(frozen=True, slots=True)
class LeadSheetRequest:
    """A new progression for the lead sheet, from the next bar line (OSC `/leadsheet/progression "| C | G7 |"`),
    or the key it is read in (`/leadsheet/key Bb`); `what` is "progression" or "key", `text` as sent."""

    what: str
    text: str


SHAPES = ("rhythm", "mood", "style")  # what a ShapeRequest may shape (its index is what the intake ring carries)
Event = (NoteMessage | ControlChange | NamedControl | LearnRequest | ModeRequest | MemoryRequest
         | ShapeRequest | LeadSheetRequest)  # inputs -> engine


@dataclass(slots=True)
class NoteSequence:
    """Notes in onset order with the unit of their times and the tempo that converts it."""

    notes: list[Note] = field(default_factory=list)
    unit: TimeUnit = "beats"
    tempo_bpm: float = 120.0

    def _scaled(self, factor: float, unit: TimeUnit) -> NoteSequence:
        notes = [replace(n, ioi=n.ioi * factor, duration=n.duration * factor) for n in self.notes]
        return NoteSequence(notes, unit, self.tempo_bpm)

    def to_beats(self) -> NoteSequence:
        return self if self.unit == "beats" else self._scaled(self.tempo_bpm / 60000.0, "beats")

    def to_ms(self) -> NoteSequence:
        return self if self.unit == "ms" else self._scaled(60000.0 / self.tempo_bpm, "ms")

    def onsets(self) -> list[float]:
        """Absolute onset times in this sequence's unit, first note at its own ioi."""
        t, out = 0.0, []
        for n in self.notes:
            t += n.ioi
            out.append(t)
        return out

    @classmethod
    def from_absolute(
        cls, notes: list[tuple[float, float, int, int]], unit: TimeUnit = "beats", tempo_bpm: float = 120.0
    ) -> NoteSequence:
        """Build from (onset, duration, pitch, velocity) tuples; sorts by onset, then pitch."""
        out, previous = [], 0.0
        for onset, duration, pitch, velocity in sorted(notes, key=lambda n: (n[0], n[2])):
            out.append(Note(pitch, velocity, max(0.0, onset - previous), duration))
            previous = onset
        return cls(out, unit, tempo_bpm)


def read_midi(path: str | Path) -> NoteSequence:
    """Read every note of a MIDI file (all tracks, all channels) as a sequence in beats."""
    import mido

    path = Path(path)
    try:
        midi = mido.MidiFile(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise InputError(f"{path}: not a readable MIDI file ({err})") from err
    tpb = midi.ticks_per_beat
    tempo_bpm = None
    notes: list[tuple[float, float, int, int]] = []
    for track in midi.tracks:
        tick = 0
        sounding: dict[tuple[int, int], tuple[int, int]] = {}
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo" and tempo_bpm is None:
                tempo_bpm = mido.tempo2bpm(msg.tempo)
            elif msg.type == "note_on" and msg.velocity > 0:
                key = (msg.channel, msg.note)
                if key in sounding:  # retrigger: end the earlier note here
                    start, vel = sounding.pop(key)
                    if tick > start:
                        notes.append((start / tpb, (tick - start) / tpb, msg.note, vel))
                sounding[(msg.channel, msg.note)] = (tick, msg.velocity)
            elif msg.type in ("note_off", "note_on"):
                start_vel = sounding.pop((msg.channel, msg.note), None)
                if start_vel is not None and tick > start_vel[0]:
                    notes.append((start_vel[0] / tpb, (tick - start_vel[0]) / tpb, msg.note, start_vel[1]))
    return NoteSequence.from_absolute(notes, "beats", tempo_bpm or 120.0)


def write_midi(sequence: NoteSequence, path: str | Path, ticks_per_beat: int = 480, channel: int = 0) -> None:
    """Write one sequence as a MIDI file with its tempo."""
    write_midi_tracks([(sequence, channel)], path, sequence.tempo_bpm, ticks_per_beat)


def write_midi_tracks(tracks: list[tuple[NoteSequence, int]], path: str | Path, tempo_bpm: float,
                      ticks_per_beat: int = 480, names: list[str] | None = None) -> None:
    """Write (sequence, channel) pairs as the tracks of one MIDI file (type 1 if more than one), named if given."""
    import mido

    midi = mido.MidiFile(type=0 if len(tracks) == 1 else 1, ticks_per_beat=ticks_per_beat)
    for index, (sequence, channel) in enumerate(tracks):
        beats = sequence.to_beats()
        timeline: list[tuple[int, int, int, int]] = []  # (tick, order, pitch, velocity); offs sort first
        for onset, note in zip(beats.onsets(), beats.notes):
            start = round(onset * ticks_per_beat)
            end = max(start + 1, round((onset + note.duration) * ticks_per_beat))
            timeline.append((start, 1, note.pitch, note.velocity))
            timeline.append((end, 0, note.pitch, 0))
        timeline.sort()
        track = mido.MidiTrack()
        if names:
            track.append(mido.MetaMessage("track_name", name=names[index], time=0))
        if index == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
        last = 0
        for tick, _, pitch, velocity in timeline:
            kind = "note_on" if velocity else "note_off"
            track.append(mido.Message(kind, note=pitch, velocity=velocity, channel=channel, time=tick - last))
            last = tick
        midi.tracks.append(track)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    midi.save(path)
