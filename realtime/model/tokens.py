"""Notes <-> model tokens: one model step per note, four factorized fields.

Each note becomes four small integers: pitch (0-127), inter-onset time bucket, duration bucket
and velocity bucket. Times are quantized in beats, so grid music and live playing (converted
from milliseconds at the current tempo) share one vocabulary. Index `len(field)` of each
input field is a start-of-sequence marker that no output head predicts. `models/README.md`
explains why this tokenization was chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..events import Note, NoteSequence

# Bucket centres in beats. Inter-onset 0 is a chord tone; the rest cover triplets and
# dotted values up to two bars of 4/4. Durations have no zero.
IOI_BEATS = (0.0, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
DURATION_BEATS = (1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
VELOCITY_LEVELS = (16, 32, 48, 64, 80, 96, 112, 127)
N_PITCH = 128
CHORD_IOI_BEATS = 1 / 16  # onsets closer than this count as one chord

FIELDS = ("pitch", "ioi", "duration", "velocity")
FIELD_SIZES = {"pitch": N_PITCH, "ioi": len(IOI_BEATS), "duration": len(DURATION_BEATS), "velocity": len(VELOCITY_LEVELS)}
START = {name: size for name, size in FIELD_SIZES.items()}  # start marker = one past the last class

_LOG_IOI = np.log(np.asarray(IOI_BEATS[1:]))
_LOG_DUR = np.log(np.asarray(DURATION_BEATS))
_VEL = np.asarray(VELOCITY_LEVELS, dtype=np.float64)


def _nearest_log(value: float, log_table: np.ndarray) -> int:
    return int(np.argmin(np.abs(log_table - np.log(max(value, 1e-6)))))


def ioi_bucket(beats: float) -> int:
    if beats < CHORD_IOI_BEATS:
        return 0
    return 1 + _nearest_log(beats, _LOG_IOI)


def duration_bucket(beats: float) -> int:
    return _nearest_log(beats, _LOG_DUR)


def velocity_bucket(velocity: int) -> int:
    return int(np.argmin(np.abs(_VEL - velocity)))


@dataclass(frozen=True, slots=True)
class Token:
    pitch: int
    ioi: int
    duration: int
    velocity: int

    def to_note(self, velocity: int | None = None) -> Note:
        """The note this token stands for, in beats; `velocity` overrides the bucket's level."""
        return Note(
            self.pitch,
            velocity if velocity is not None else VELOCITY_LEVELS[self.velocity],
            IOI_BEATS[self.ioi],
            DURATION_BEATS[self.duration],
        )


def note_to_token(note: Note) -> Token:
    """Tokenize one note whose times are in beats."""
    return Token(note.pitch, ioi_bucket(note.ioi), duration_bucket(note.duration), velocity_bucket(note.velocity))


def encode(sequence: NoteSequence) -> np.ndarray:
    """A sequence as an int array of shape (n_notes, 4): pitch, ioi, duration, velocity."""
    beats = sequence.to_beats()
    out = np.empty((len(beats.notes), 4), dtype=np.int64)
    for i, note in enumerate(beats.notes):
        t = note_to_token(note)
        out[i] = (t.pitch, t.ioi, t.duration, t.velocity)
    return out


def decode(tokens: np.ndarray, tempo_bpm: float = 120.0) -> NoteSequence:
    """The inverse of `encode` up to quantization: a sequence in beats."""
    notes = [Token(*map(int, row)).to_note() for row in tokens]
    return NoteSequence(notes, "beats", tempo_bpm)


def vocabulary() -> dict:
    """The tokenization as plain data, for model metadata."""
    return {
        "scheme": "note-factorized-v1",
        "fields": list(FIELDS),
        "sizes": dict(FIELD_SIZES),
        "start_index": dict(START),
        "ioi_beats": list(IOI_BEATS),
        "duration_beats": list(DURATION_BEATS),
        "velocity_levels": list(VELOCITY_LEVELS),
        "chord_ioi_beats": CHORD_IOI_BEATS,
    }
