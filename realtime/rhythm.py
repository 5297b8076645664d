"""Rhythm prompts: a pattern of onsets and durations, looped under the duet's answer.

The pitches stay the model's; the rhythm is the user's. A pattern comes from a MIDI file (its onsets,
a chord counting as one, and their durations; the loop lasts whole 4/4 bars), from text on a sixteenth
grid (`"x.x.xx.x"`: `x` a note, `-` holds it on, `.` a rest, `|` and spaces only for the eye), from
durations in beats (`"1 0.5 0.5 1"`, each note lasting until the next), or from taps (their gaps,
quantized to a sixteenth; the last tap closes the loop). Everything is in beats, so a pattern follows
whatever tempo the answer plays at. Errors are one line naming the file or the pattern.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .model.tokens import CHORD_IOI_BEATS, duration_bucket, ioi_bucket

GRID_BEATS = 0.25  # a sixteenth: one character of a grid pattern, the quantum of taps
BAR_BEATS = 4.0  # a MIDI file's loop is a whole number of 4/4 bars
MAX_STEPS = 256
MAX_NOTE_BEATS = 8.0  # the longest duration the model's tokens say
_GRID = re.compile(r"[x.\-| ]+")
_NUMBERS = re.compile(r"[0-9.,/ ]+")


@dataclass(frozen=True)
class Rhythm:
    """Onsets (beats from the loop's start, the first 0) and durations, looped every `length_beats`."""

    onsets: tuple[float, ...]
    durations: tuple[float, ...]
    length_beats: float
    source: str = ""  # what it was made from, for the status line and errors
    ioi_buckets: tuple[int, ...] = field(init=False, repr=False, compare=False)  # what the model hears, step by step
    duration_buckets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.onsets or len(self.onsets) != len(self.durations) or len(self.onsets) > MAX_STEPS:
            raise InputError(f"rhythm {self.source!r}: needs 1-{MAX_STEPS} notes")
        if self.onsets[0] != 0.0 or any(b <= a for a, b in zip(self.onsets, self.onsets[1:])):
            raise InputError(f"rhythm {self.source!r}: onsets must start at 0 and rise")
        if not self.onsets[-1] < self.length_beats:
            raise InputError(f"rhythm {self.source!r}: the loop must outlast its last onset")
        # what the model hears for each step: the nearest of its inter-onset and duration buckets (frozen: set once)
        object.__setattr__(self, "ioi_buckets", tuple(ioi_bucket(self.gap_beats(k)) for k in range(len(self.onsets))))
        object.__setattr__(self, "duration_buckets", tuple(duration_bucket(d) for d in self.durations))

    def __len__(self) -> int:
        return len(self.onsets)

    def onset_beats(self, k: int) -> float:
        """Where the answer's k-th note starts, in beats from its first."""
        loops, step = divmod(k, len(self.onsets))
        return loops * self.length_beats + self.onsets[step]

    def gap_beats(self, k: int) -> float:
        """The inter-onset time before note k (k >= 1; for k = 0, the gap closing the loop)."""
        step = k % len(self.onsets)
        return self.onsets[step] - self.onsets[step - 1] if step else self.length_beats - self.onsets[-1]

    def duration_beats(self, k: int) -> float:
        return self.durations[k % len(self.onsets)]

    def describe(self) -> str:
        return f"{len(self.onsets)} notes in {self.length_beats:g} beats"


def from_grid(text: str) -> Rhythm:
    """`x` a note, `-` holds the last note a sixteenth longer, `.` a sixteenth of rest; `|` and spaces ignored."""
    cells = [c for c in text if c in "x.-"]
    onsets, durations = [], []
    for i, cell in enumerate(cells):
        if cell == "x":
            onsets.append(i * GRID_BEATS)
            durations.append(GRID_BEATS)
        elif cell == "-" and durations and onsets[-1] + durations[-1] == i * GRID_BEATS:
            durations[-1] += GRID_BEATS
    if not onsets:
        raise InputError(f"rhythm {text!r}: no note (write x for a note, . for a rest, - to hold)")
    return _rotated(onsets, durations, len(cells) * GRID_BEATS, text)


def from_durations(text: str) -> Rhythm:
    """Inter-onset times in beats, each note lasting until the next: `"1 0.5 0.5 1"` (or `1/2`)."""
    values = []
    for word in text.replace(",", " ").split():
        try:
            top, _, bottom = word.partition("/")
            value = float(top) / float(bottom) if bottom else float(top)
        except (ValueError, ZeroDivisionError):
            raise InputError(f"rhythm {text!r}: {word!r} is not a number of beats") from None
        if not (math.isfinite(value) and CHORD_IOI_BEATS <= value <= MAX_NOTE_BEATS):
            raise InputError(f"rhythm {text!r}: {word!r} beats is outside {CHORD_IOI_BEATS:g}-{MAX_NOTE_BEATS:g}")
        values.append(value)
    onsets = [float(sum(values[:i])) for i in range(len(values))]
    return Rhythm(tuple(onsets), tuple(values), sum(values), text)


def from_midi(path: str | Path) -> Rhythm:
    """A MIDI file's onsets (notes within 1/16 beat of each other are one onset) and their longest durations."""
    from .events import read_midi  # the MIDI reader only where a file is read

    sequence = read_midi(path).to_beats()  # a file that is not MIDI: one line naming it
    onsets: list[float] = []
    durations: list[float] = []
    end = 0.0
    for onset, note in zip(sequence.onsets(), sequence.notes):
        end = max(end, onset + note.duration)
        if onsets and onset - onsets[-1] < CHORD_IOI_BEATS:
            durations[-1] = max(durations[-1], note.duration)
            continue
        onsets.append(onset)
        durations.append(note.duration)
    if not onsets:
        raise InputError(f"{path}: no notes to take a rhythm from")
    length = max(BAR_BEATS, math.ceil((end - 1e-6) / BAR_BEATS) * BAR_BEATS)
    return _rotated(onsets, [min(d, MAX_NOTE_BEATS) for d in durations], length, str(path))


def from_taps(times_ns: list[int], ns_per_beat: float) -> Rhythm | None:
    """Taps t0..tn: notes at t0..t(n-1), the loop closed by tn; gaps quantized to a sixteenth. None: too few."""
    if len(times_ns) < 2:
        return None
    steps = [max(1, round((b - a) / ns_per_beat / GRID_BEATS)) for a, b in zip(times_ns, times_ns[1:])]
    steps = steps[:MAX_STEPS]
    onsets = [sum(steps[:i]) * GRID_BEATS for i in range(len(steps))]
    durations = [min(s * GRID_BEATS, MAX_NOTE_BEATS) * 0.9 for s in steps]  # a little detached, as tapped
    return Rhythm(tuple(onsets), tuple(durations), sum(steps) * GRID_BEATS, f"{len(times_ns)} taps")


def _rotated(onsets: list[float], durations: list[float], length: float, source: str) -> Rhythm:
    """The loop from its first onset: a pattern's leading rest becomes the gap that closes it."""
    first = onsets[0]
    return Rhythm(tuple(o - first for o in onsets), tuple(durations), length, source)


def parse_rhythm(text: str, folder: str | Path | None = None) -> Rhythm:
    """A pattern from a MIDI file (`.mid`/`.midi`, relative to `folder`), grid text or durations in beats."""
    text = text.strip()
    if text.lower().endswith((".mid", ".midi")):
        path = Path(text).expanduser()
        if folder is not None and not path.is_absolute():
            path = Path(folder) / path
        if not path.is_file():
            raise InputError(f"rhythm file {path}: no such file")
        return from_midi(path)
    if text and _GRID.fullmatch(text):
        return from_grid(text)
    if text and _NUMBERS.fullmatch(text):
        return from_durations(text)
    raise InputError(f"rhythm {text!r}: give a .mid file, a sixteenth grid like \"x.x.xx.x\" "
                     "or durations in beats like \"1 0.5 0.5 1\"")
