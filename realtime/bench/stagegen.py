"""Playing the stage model offline for its figures: held-out lines, a chorale's harmony in time, a control row.

The benchmarks benchmarks/stage_harmony.py, stage_roles.py and stage_styles.py share this. The model
hears, with each step, the controls of the note it is about to predict; the harmony of that note is
the chord sounding at its onset, which is not known before the note is drawn. `generate_over` draws
the note with the chord sounding at the previous onset and, when the drawn onset falls under another
chord, steps the previous note again from the saved state with that chord and draws again (once), so
the model hears the chord at the note's onset, as in training.
"""

from __future__ import annotations

import numpy as np

from ..model import controls as ctl
from ..model.generator import Generator
from ..model.tokens import DURATION_BEATS, IOI_BEATS, VELOCITY_LEVELS, Token
from ..training.stagedata import best_chord, chord_root, held_out_pieces

_IOI, _DUR = np.asarray(IOI_BEATS), np.asarray(DURATION_BEATS)
# A control set by hand over its range (benchmarks/follow.py, stage_roles.py), the others at their defaults
SWEEPS = {"register": (36, 48, 60, 72, 84), "density": (0.5, 1, 2, 3, 4), "dynamics": (30, 50, 70, 90, 110)}


def test_pieces(card: dict, quick: bool) -> dict[str, dict]:
    """The card's held-out pieces with their lines (checked against its recorded test split)."""
    return held_out_pieces(card, quick)


def onsets(tokens: np.ndarray) -> np.ndarray:
    """Each note's onset in beats from the line's first note."""
    return np.cumsum(_IOI[tokens[:, 1]]) - _IOI[tokens[0, 1]]


class Harmony:
    """The chord some notes (a chorale's lower voices) sound at any moment: its pitch-class mask and root, and
    its chord tones (what sounds, plus the tones of the template its root was matched with)."""

    def __init__(self, notes: list[tuple[float, float, int]], scale: frozenset[int] | None = None) -> None:
        self.notes = sorted(notes)  # (start, end, pitch) in beats
        self.scale = scale  # the piece's key: which third a bare fifth or dyad implies
        self.end = max(e for _, e, _ in self.notes)

    def _slice(self, beat: float) -> tuple[int, int | None]:
        mask, low = 0, None
        for start, end, pitch in self.notes:
            if start > beat + 1e-6:
                break
            if end > beat + 1e-6:
                mask |= 1 << (pitch % 12)
                low = pitch if low is None or pitch < low else low
        return mask, None if low is None else low % 12

    def at(self, beat: float) -> tuple[int, int]:
        """(mask, root) at a moment, as the training data computes it (no key)."""
        mask, bass = self._slice(beat)
        return mask, chord_root(mask, bass)

    def tones(self, beat: float) -> int:
        mask, bass = self._slice(beat)
        return mask | best_chord(mask, bass, self.scale)[1]


def chorale_voices(name: str) -> dict[str, list[tuple[float, float, int]]] | None:
    """A chorale's four voices (soprano, alto, tenor, bass) as exact (start, end, pitch) in beats, from music21
    (token onsets are quantized, so summing them drifts between voices); None when it is not SATB."""
    from music21 import corpus

    from ..training.stagedata import PART_ROLES, _part_notes

    parts = {(p.partName or "").strip().lower(): p for p in corpus.parse(name.split(":")[1]).parts}
    if not set(PART_ROLES) <= set(parts):
        return None
    return {v: [(on, on + d, m) for on, d, m, _ in _part_notes(parts[v])] for v in PART_ROLES}


def answer_measures(answer: list[Token]) -> dict:
    """What an answer measures for each swept control: mean pitch, onsets per beat, mean velocity."""
    onsets = np.cumsum([IOI_BEATS[t.ioi] for t in answer])
    distinct = np.unique(np.round(onsets, 6))
    return {"register": float(np.mean([t.pitch for t in answer])),
            "density": (len(distinct) - 1) / max(float(distinct[-1] - distinct[0]), 1 / 8),
            "dynamics": float(np.mean([VELOCITY_LEVELS[t.velocity] for t in answer]))}


def set_row(row: np.ndarray, measured: dict[str, float] | None = None, pcs: np.ndarray | None = None,
            harmony: tuple[int, int] | None = None, role: str | None = None, style: str | None = None) -> None:
    """A full control row in place: defaults, then the given measured controls, key shares and groups."""
    row[:] = ctl.DEFAULTS
    for name, value in (measured or {}).items():
        row[ctl.INDEX[name]] = value
    if pcs is not None:
        row[ctl.PITCH_CLASS_SLICE] = pcs
    row[ctl.MEASURED:] = 0.0
    if harmony is not None:
        mask, root = harmony
        row[ctl.CHORD_SLICE] = (mask >> np.arange(12)) & 1
        if root >= 0:
            row[ctl.ROOT_SLICE.start + root] = 1.0
    if role is not None:
        row[ctl.INDEX[f"role_{role}"]] = 1.0
    if style is not None:
        row[ctl.INDEX[f"style_{style}"]] = 1.0


def line_measures(tokens: np.ndarray) -> dict[str, float]:
    """A line's measured controls as one value each over the whole line (what a player's phrase would set)."""
    rows = ctl.measure(tokens)
    return {name: float(rows[:, ctl.INDEX[name]].mean()) for name in ("density", "polyphony", "register", "dynamics")}


def pitch_shares(tokens: np.ndarray) -> np.ndarray:
    counts = np.bincount(tokens[:, 0] % 12, minlength=12).astype(np.float64)
    return (counts / counts.sum()).astype(np.float32)


def generate_over(generator: Generator, prime: np.ndarray, beats: float, write, max_notes: int = 400
                  ) -> list[tuple[float, Token]]:
    """Notes (onset in beats, token) after hearing `prime`, until `beats`; `write(row, beat)` sets the control
    row for the note at `beat` (a chord change under it re-draws the note once, from the saved state)."""
    runner = generator.runner
    row = runner.controls[0]
    generator.reset()
    prime_onsets = onsets(prime)
    now = 0.0
    last = None
    for i, token in enumerate(prime):
        now = float(prime_onsets[i])
        write(row, now)  # the control row of this note, fed with the step before it
        if last is not None:
            generator.feed(last)
        last = Token(*map(int, token))
    out: list[tuple[float, Token]] = []
    while now < beats and len(out) < max_notes:
        before = runner.get_state()
        write(row, now)
        generator.feed(last)
        token = generator.sample_next()
        onset = now + IOI_BEATS[token.ioi]
        if write(row, onset):  # the note falls under other controls: hear the last note again with them
            runner.reset(before)
            generator.feed(last)
            token = generator.sample_next()
            onset = now + IOI_BEATS[token.ioi]
        if onset >= beats:
            break
        out.append((onset, token))
        now, last = onset, token
    return out
