"""Bach chorales as the listening benchmark reads them, with music21's own analysis, parsed once and cached.

For each chorale of music21's corpus (the `chorales.Iterator` order): every note (onset and duration
in quarter notes, MIDI pitch), the soprano line alone, music21's key (`analyze('key')`), and per beat
(each whole quarter note) the chordified slice sounding there: its pitch classes, music21's root
(`Chord.root()`) and the quality its intervals above that root make in the listener's template table
(chords.QUALITIES, the fifth allowed missing), or "other" (a passing or suspended note in the slice).
"""

from __future__ import annotations

import json
import os
from multiprocessing import Pool
from pathlib import Path

from ..listen.chords import QUALITIES

NAMES = {"major": "maj", "minor": "min"}


def template_quality(root: int, pitch_classes: set[int]) -> str:
    """The quality whose intervals (or all but the fifth) are exactly these above the root, else "other"."""
    intervals = {(pc - root) % 12 for pc in pitch_classes}
    for quality, (tones, _) in QUALITIES.items():
        if intervals == set(tones) or (7 in tones and len(tones) > 3 and intervals == set(tones) - {7}):
            return quality
    for quality, (tones, _) in QUALITIES.items():  # a triad without its fifth: C-E is C major
        if len(tones) == 3 and 7 in tones and intervals == set(tones) - {7}:
            return quality
    return "other"


def _analyse(name: str) -> dict | None:
    from music21 import chord, corpus

    try:
        score = corpus.parse(name)
        flat = score.stripTies().flatten()
        notes = [(float(n.offset), float(n.quarterLength), int(p.midi)) for n in flat.notes
                 if n.quarterLength > 0 for p in n.pitches]
        soprano = [(float(n.offset), float(n.quarterLength), int(n.pitches[-1].midi))
                   for n in score.parts[0].stripTies().flatten().notes if n.quarterLength > 0]
        key = score.analyze("key")
        slices = [c for c in score.chordify().flatten().getElementsByClass(chord.Chord) if c.pitches]
    except Exception:  # an odd file must not stop the benchmark
        return None
    beats, i = [], 0
    end = max(on + d for on, d, _ in notes)
    for beat in range(int(end)):
        while i + 1 < len(slices) and slices[i + 1].offset <= beat:
            i += 1
        c = slices[i]
        if not c.offset <= beat < c.offset + c.quarterLength:
            continue
        pcs = {p.pitchClass for p in c.pitches}
        if len(pcs) < 2:
            continue
        root = c.root().pitchClass
        beats.append((beat, root, template_quality(root, pcs), sorted(pcs), min(p.midi for p in c.pitches) % 12))
    return {"name": str(name), "key": [key.tonic.pitchClass, key.mode], "notes": notes, "soprano": soprano,
            "beats": beats, "length": end}


def load(cache_folder: Path, limit: int | None = None, workers: int = 2, analyse=_analyse,
         cache_name: str = "chorales-listening.json") -> list[dict]:
    """The first `limit` chorales (all: None), analysed (by `analyse`, a module-level function of a corpus name:
    another benchmark's reading), from the cache when it holds them."""
    from music21 import corpus

    cache = Path(cache_folder) / cache_name
    known = json.loads(cache.read_text()) if cache.exists() else {}
    names = [str(n) for n in corpus.chorales.Iterator(returnType="filename")][:limit]
    missing = [n for n in names if n not in known]
    if missing:
        os.environ.setdefault("TMPDIR", str(Path(cache_folder) / "tmp"))  # music21's own cache stays with ours
        Path(os.environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        with Pool(workers) as pool:
            for name, result in zip(missing, pool.map(analyse, missing, chunksize=4)):
                known[name] = result
        temporary = cache.with_name(f".{cache.name}.{os.getpid()}")  # whole or not at all, as training's caches
        temporary.write_text(json.dumps(known))
        os.replace(temporary, cache)
    return [known[n] for n in names if known.get(n)]
