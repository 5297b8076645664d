"""A progression from a MIDI file: the chord of each half bar, as the listener's templates name it.

Every note of the file (all tracks and channels, realtime/events.py `read_midi`) weighs on the pitch
classes of each half bar it sounds in by the beats it sounds there; the half bar's lowest note is its
bass. The listener's chord matcher (realtime/listen/chords.py `match`) names the chord; a half bar with
fewer than two pitch classes keeps the chord before it (the first chord found fills the bars before it).
Two halves with one chord make one span. The key is estimated from the notes themselves (the same
Krumhansl-Kessler profiles as the listener's) unless given. 4/4 unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, LeadSheetError
from ..events import read_midi
from ..listen.chords import match
from ..listen.keys import _PROFILES, MODES
from .parse import parse_text
from .progression import Chord, Key, Progression, Span, check_key


def is_midi_name(source: str) -> bool:
    return source.lower().rstrip().endswith((".mid", ".midi"))


def read_progression(source: str, key: str | None = None, beats_per_bar: int = 4,
                     folder: str | Path | None = None) -> tuple[Progression, float | None]:
    """A progression from text or from a MIDI file (a name ending .mid/.midi, or a file that exists), and the
    file's tempo (None for text). A relative file name is looked for in `folder` (a patch's own) when given."""
    name = source.strip()
    path = Path(name).expanduser()
    if folder is not None and not path.is_absolute():
        path = Path(folder) / path
    if is_midi_name(name) or (len(name) < 1024 and "|" not in name and _is_file(path)):
        if not _is_file(path):
            raise LeadSheetError(f"leadsheet: {path}: no such MIDI file")
        return parse_midi(str(path), key, beats_per_bar)
    return parse_text(source, key, beats_per_bar), None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system is no file
        return False


def parse_midi(path: str, key: str | None = None, beats_per_bar: int = 4) -> tuple[Progression, float]:
    """(the progression, the file's tempo in BPM)."""
    try:
        sequence = read_midi(path)
    except InputError as err:
        raise LeadSheetError(f"leadsheet: {err}") from None
    if not sequence.notes:
        raise LeadSheetError(f"leadsheet: {path}: no notes to take chords from")
    notes = [(onset, note.duration, note.pitch) for onset, note in zip(sequence.onsets(), sequence.notes)]
    half = beats_per_bar / 2 if beats_per_bar % 2 == 0 else beats_per_bar
    end = max(onset + duration for onset, duration, _ in notes)
    slots = max(1, int(np.ceil(end / half - 1e-6)))
    slots += slots % 2 if half < beats_per_bar else 0  # whole bars
    weights, lowest = np.zeros((slots, 12)), np.full(slots, 128)
    totals = np.zeros(12)
    for onset, duration, pitch in notes:
        totals[pitch % 12] += duration
        first, last = int(onset // half), int(np.ceil((onset + duration) / half - 1e-6))
        for slot in range(first, min(slots, max(last, first + 1))):
            sounding = min(onset + duration, (slot + 1) * half) - max(onset, slot * half)
            if sounding > 1e-6:
                weights[slot, pitch % 12] += sounding
                lowest[slot] = min(lowest[slot], pitch)
    chords: list[Chord | None] = []
    for slot in range(slots):
        found = match(weights[slot] / max(weights[slot].max(), 1e-9), None if lowest[slot] > 127 else lowest[slot] % 12)
        chords.append(None if found is None else Chord(found[0], found[1]))
    known = [c for c in chords if c is not None]
    if not known:
        raise LeadSheetError(f"leadsheet: {path}: no half bar holds two pitch classes, so no chord to read")
    filled, previous = [], known[0]
    for chord in chords:
        previous = chord or previous
        filled.append(previous)
    spans: list[Span] = []
    step = int(half)
    for i, chord in enumerate(filled):
        if spans and spans[-1].chord == chord:
            spans[-1] = Span(chord, spans[-1].start, spans[-1].beats + step)
        else:
            spans.append(Span(chord, i * step, step))
    if key is not None:
        found_key = check_key(key, "--key")
    else:
        centred = totals - totals.mean()
        best = int(np.argmax(_PROFILES @ centred))
        found_key = Key(best % 12, MODES[best // 12])
    bars = slots * step // beats_per_bar
    return Progression(tuple(spans), bars, beats_per_bar, found_key, str(path)), sequence.tempo_bpm
