"""How well parts fit a progression: chord tones on strong beats, the root on downbeats, the key.

The same three measures serve the lead sheet's render, its live mode heard through JACK, and Bach's
chorales (benchmarks/leadsheet.py), each note as (onset in beats from a bar line, pitch):

- strong-beat chord tones: of the notes beginning on a strong beat (beat 1, and beat 3 of 4/4;
  melody.strong), the share whose pitch class is a tone of the chord sounding at that onset;
- root on downbeats: of the bars, the share whose lowest note beginning on beat 1 is the chord's root
  (a bar with no such note counts against);
- in key: the share of notes in the key (minor: natural minor with its raised sixth and seventh).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .melody import ON_BEAT, strong
from .render import Rendered

Notes = Iterable[tuple[float, int]]  # (onset beat, pitch)


def share(hits: int, count: int) -> float | None:
    return round(hits / count, 4) if count else None


def chord_tones_on_strong_beats(notes: Notes, tones_at: Callable[[float], Iterable[int]],
                                beats_per_bar: int) -> tuple[int, int]:
    """(chord tones, notes) among the notes beginning on a strong beat."""
    hits = count = 0
    for onset, pitch in notes:
        if strong(onset, beats_per_bar):
            count += 1
            hits += pitch % 12 in set(tones_at(onset))
    return hits, count


def roots_on_downbeats(bass: Notes, root_at: Callable[[float], int | None], bars: Iterable[int],
                       beats_per_bar: int) -> tuple[int, int]:
    """(bars whose lowest downbeat note is the root, bars); `bars` are the bar numbers judged."""
    lowest: dict[int, int] = {}
    for onset, pitch in bass:
        bar = round(onset / beats_per_bar)
        if abs(onset - bar * beats_per_bar) < ON_BEAT:
            lowest[bar] = min(lowest.get(bar, 128), pitch)
    hits = count = 0
    for bar in bars:
        root = root_at(bar * beats_per_bar)
        if root is None:
            continue
        count += 1
        hits += bar in lowest and lowest[bar] % 12 == root
    return hits, count


def in_key(notes: Notes, key_classes: frozenset[int]) -> tuple[int, int]:
    hits = count = 0
    for _, pitch in notes:
        count += 1
        hits += pitch % 12 in key_classes
    return hits, count


def judge_rendered(rendered: Rendered) -> dict:
    """Every measure of a render: per part and over all parts (counts, so runs can be summed)."""
    progression = rendered.progression
    bpb = progression.beats_per_bar
    tones = lambda beat: progression.chord_at(beat).tones  # noqa: E731
    out: dict = {}
    for part, notes in rendered.parts.items():
        out[part] = chord_tones_on_strong_beats([(o, p) for o, _, p, _ in notes], tones, bpb)
    out["all"] = tuple(map(sum, zip(*(out[p] for p in rendered.parts))))
    out["bass_root"] = roots_on_downbeats([(o, p) for o, _, p, _ in rendered.parts["bass"]],
                                          lambda beat: progression.chord_at(beat).root, range(rendered.bars), bpb)
    if "melody" in rendered.parts:
        out["melody_in_key"] = in_key([(o, p) for o, _, p, _ in rendered.parts["melody"]], progression.key.in_key())
    return out
