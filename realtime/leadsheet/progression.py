"""A progression: chords with their lengths in beats, the bars they fill, and the key they are in.

Chords use the listener's qualities (realtime/listen/chords.py QUALITIES), so every part of the engine
names and voices them alike; a slash chord keeps its bass pitch class apart. The key is given (`in Bb`,
`--key c`) or, for chord symbols without one, estimated: each chord's tones weighted by its beats (its
root twice) against the Krumhansl-Kessler profiles realtime/listen/keys.py uses for the player.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from ..errors import LeadSheetError
from ..listen.chords import PITCH_NAMES, chord_name
from ..listen.keys import _PROFILES, MODES
from ..model.sampling import SCALES
from ..engine.voicing import chord_tones

LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
ACCIDENTALS = {"#": 1, "♯": 1, "b": -1, "♭": -1}


@dataclass(frozen=True, slots=True)
class Chord:
    """Root pitch class (0 = C), quality (a key of QUALITIES), and a slash chord's bass pitch class."""

    root: int
    quality: str
    bass: int | None = None

    @property
    def name(self) -> str:
        return chord_name(self.root, self.quality) + ("" if self.bass is None else "/" + PITCH_NAMES[self.bass])

    @property
    def tones(self) -> tuple[int, ...]:
        """Pitch classes, root first (a slash chord's bass, when not a tone of it, is added last)."""
        tones = chord_tones(self.root, self.quality)
        return tones if self.bass is None or self.bass in tones else tones + (self.bass,)

    @property
    def lowest(self) -> int:
        """The pitch class the bass stands on: the slash note, else the root."""
        return self.root if self.bass is None else self.bass


@dataclass(frozen=True, slots=True)
class Span:
    chord: Chord
    start: int  # beats from the progression's start
    beats: int


@dataclass(frozen=True)
class Key:
    tonic: int
    mode: str  # "major" or "minor"

    @property
    def name(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    def scale(self) -> tuple[int, ...]:
        """The key's pitch classes: major, or natural minor."""
        return tuple((self.tonic + step) % 12 for step in SCALES[self.mode])

    def in_key(self) -> frozenset[int]:
        """What counts as in the key when judging: the scale, and in minor its raised sixth and seventh too."""
        extra = {(self.tonic + 9) % 12, (self.tonic + 11) % 12} if self.mode == "minor" else set()
        return frozenset(self.scale()) | extra


@dataclass(frozen=True)
class Progression:
    """Chords in order, each an integer number of beats, filling `bars` bars; loops when read past its end."""

    spans: tuple[Span, ...]
    bars: int
    beats_per_bar: int
    key: Key
    text: str = ""
    starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", tuple(span.start for span in self.spans))

    @property
    def beats(self) -> int:
        return self.bars * self.beats_per_bar

    def span_at(self, beat: float) -> Span:
        """The span sounding at a beat (counted from the start, looping)."""
        return self.spans[max(0, bisect_right(self.starts, beat % self.beats + 1e-9) - 1)]

    def chord_at(self, beat: float) -> Chord:
        return self.span_at(beat).chord

    def changes_at(self, beat: int) -> bool:
        """Whether a chord begins on this (whole) beat."""
        return beat % self.beats in self.starts

    def describe(self) -> str:
        """'| C | Am | F G7 |' (a chord held over a bar line is named again in the next bar)."""
        bars = []
        for bar in range(self.bars):
            names, beat = [], bar * self.beats_per_bar
            while beat < (bar + 1) * self.beats_per_bar:
                span = self.span_at(beat)
                names.append(span.chord.name)
                beat = max(beat + 1, span.start + span.beats)
            bars.append(" ".join(names))
        return "| " + " | ".join(bars) + " |"


def note_class(text: str) -> int | None:
    """'C', 'F#', 'Bb' -> pitch class; None if not a note name."""
    if not text or text[0] not in LETTERS or any(c not in ACCIDENTALS for c in text[1:]):
        return None
    return (LETTERS[text[0]] + sum(ACCIDENTALS[c] for c in text[1:])) % 12


def parse_key(text: str) -> Key | None:
    """'Bb' or 'Bb major' (major), 'c', 'Cm', 'C minor' or 'c minor' (minor); None if it is not a key."""
    words = text.strip().split()
    if not 1 <= len(words) <= 2:
        return None
    name, mode = words[0], (words[1].lower() if len(words) == 2 else None)
    if mode not in (None, "major", "minor", "maj", "min"):
        return None
    if mode is None and len(name) > 1 and name.endswith("m") and note_class(name[:-1].capitalize()) is not None:
        name, mode = name[:-1], "minor"
    tonic = note_class(name[0].upper() + name[1:])
    if tonic is None:
        return None
    if mode is None:
        mode = "minor" if name[0].islower() else "major"
    return Key(tonic, "minor" if mode.startswith("min") else "major")


def estimate_key(spans: tuple[Span, ...]) -> Key:
    """The key whose profile correlates best with the chords' tones (weighted by beats, roots twice)."""
    histogram = np.zeros(12)
    for span in spans:
        for pc in span.chord.tones:
            histogram[pc] += span.beats
        histogram[span.chord.root] += span.beats
    if spans:  # where a progression starts and ends weighs too: it is usually home
        histogram[spans[0].chord.root] += spans[0].beats
        histogram[spans[-1].chord.root] += spans[-1].beats / 2
    centred = histogram - histogram.mean()
    scores = _PROFILES @ centred
    scores += _CADENCE * np.abs(scores).max() * _resolutions(spans)  # V7 -> I says where home is
    best = int(np.argmax(scores))
    return Key(best % 12, MODES[best // 12])


_CADENCE = 0.25  # a dominant seventh resolving down a fifth: this share of the best fit, for its target's key


def _resolutions(spans: tuple[Span, ...]) -> np.ndarray:
    """Per key (the profiles' order: 12 major, 12 minor), how many dominant sevenths in the progression
    resolve to its tonic chord (a fifth down, onto a chord that is not itself a dominant). Without it the
    commonest jazz cadence, | Dm7 | G7 | Cmaj7 |, fits G major best: its roots are all diatonic there too.
    The loop back from the last chord to the first is a turnaround, not a cadence, and does not count."""
    counts = np.zeros(24)
    for before, after in zip(spans, spans[1:]):
        a, b = before.chord, after.chord
        if b.root != (a.root + 5) % 12 or not _dominant(a) or _dominant(b):
            continue
        third = (b.root + 3) % 12 in b.tones
        counts[b.root + (12 if third else 0)] += 1
    return counts


def _dominant(chord: Chord) -> bool:
    tones = set(chord.tones)
    return (chord.root + 4) % 12 in tones and (chord.root + 10) % 12 in tones


def check_key(text: str, where: str) -> Key:
    key = parse_key(text)
    if key is None:
        raise LeadSheetError(f"leadsheet: {where}: {text!r} is not a key (write e.g. \"Bb\", \"c\", \"F# minor\")")
    return key
