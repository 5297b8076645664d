"""Bach's soprano and bass lines against their own harmony, measured as the lead sheet benchmark measures ours.

For each 4/4 chorale of music21's corpus (the `chorales.Iterator` order): music21's key
(`analyze('key')`), and for every soprano and bass note in a whole bar its place in the bar (beats
from the bar line) and the chord sounding as it begins: the chordified slice there, music21's root
(`Chord.root()`) and its pitch classes. Per bar, the bass note sounding on beat 1 (begun there or held
into it) and the slice's root there. Parsed in worker processes once, cached as JSON.

Chord tones of a slice: the tones of its template quality (chorales.template_quality, the fifth allowed
missing); a slice no template fits (a passing or suspended note sounds in it) keeps the pitch classes a
third, fifth or seventh above its root (and the root): a suspended fourth or a passing second is not
a chord tone, as a lead sheet would not count it one.
"""

from __future__ import annotations

from pathlib import Path

from ..listen.chords import QUALITIES
from . import chorales
from .chorales import template_quality

TERTIAN = (0, 3, 4, 6, 7, 8, 10, 11)  # intervals above the root that a triad or seventh chord can hold
CACHE = "chorales-leadsheet.json"


def chord_tones(root: int, pitch_classes: list[int]) -> set[int]:
    """The slice's chord tones, as the module docstring says."""
    quality = template_quality(root, set(pitch_classes))
    if quality != "other":
        return {(root + i) % 12 for i in QUALITIES[quality][0]}
    return {pc for pc in pitch_classes if (pc - root) % 12 in TERTIAN}


def _analyse(name: str) -> dict | None:
    from music21 import chord, corpus, meter

    try:
        score = corpus.parse(name)
        signature = next(iter(score.recurse().getElementsByClass(meter.TimeSignature)), None)
        if signature is None or signature.ratioString != "4/4" or len(score.parts) < 2:
            return None
        key = score.analyze("key")
        slices = [(float(c.offset), float(c.offset + c.quarterLength), c.root().pitchClass,
                   sorted({p.pitchClass for p in c.pitches}))
                  for c in score.chordify().flatten().getElementsByClass(chord.Chord) if c.pitches]
        bars = [(float(m.offset), float(m.quarterLength)) for m in score.parts[-1].getElementsByClass("Measure")]
        lines = {}
        for label, part, pick in (("soprano", score.parts[0], -1), ("bass", score.parts[-1], 0)):
            lines[label] = [(float(n.offset), float(n.quarterLength), int(n.pitches[pick].midi))
                            for n in part.stripTies().flatten().notes if n.quarterLength > 0]
    except Exception:  # an odd file must not stop the benchmark
        return None

    def slice_at(offset: float):
        for start, end, root, pcs in slices:
            if start <= offset + 1e-6 < end:
                return root, pcs
        return None

    whole = [start for start, length in bars if abs(length - 4.0) < 1e-6]
    out: dict = {"name": str(name), "key": [key.tonic.pitchClass, key.mode], "soprano": [], "bass": [], "downbeats": []}
    for label, notes in lines.items():
        for onset, _, pitch in notes:
            bar = next((b for b in whole if b - 1e-6 <= onset < b + 4 - 1e-6), None)
            found = slice_at(onset)
            if bar is not None and found is not None:
                out[label].append((round(onset - bar, 4), pitch, found[0], found[1]))
    for bar in whole:
        sounding = [p for on, d, p in lines["bass"] if on - 1e-6 <= bar < on + d - 1e-6]
        found = slice_at(bar)
        if sounding and found is not None:
            out["downbeats"].append((min(sounding), found[0]))
    return out


def load(cache_folder: Path, limit: int | None = None, workers: int = 2) -> list[dict]:
    """The 4/4 chorales among the first `limit` of the corpus (all: None), from the cache when it holds them."""
    return chorales.load(cache_folder, limit, workers, analyse=_analyse, cache_name=CACHE)
