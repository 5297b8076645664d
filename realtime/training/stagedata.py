"""The stage model's data: every line of a piece with its role, its style and the harmony under each note.

A chorale gives five lines: each of its four parts on its own (soprano -> melody, alto and tenor ->
inner, bass -> bass) and all parts merged (texture, the tokens `realtime train` has always used). Each
note of a part hears the harmony of the OTHER parts sounding at its onset: every note of another part
that started at or before the onset and has not ended yet is one vertical slice, own notes left out, so
a soprano learns which of its notes are chord tones of what the lower voices play. A texture note hears
the whole slice at its onset (it plays the chord itself). The melody collections (O'Neill, Ryan's
Mammoth, Essen) are single lines: role melody, no harmony (chord and root all zeros: not known).

The root is a template match (`chord_root`). Lines are kept per piece under the piece's usual name
(`chorales:bwv66.6.mxl:0`), so `split_by_piece` puts every line of a chorale where `realtime train`
puts the chorale: the test chorales of the older models stay test pieces here.

Cached as one `.npz` per collection (and subset) under the cache folder: one (n, 6) array per line,
keyed `NAME#LINE#ROLE`, columns pitch, ioi, duration, velocity (tokens), chord mask (bit i = pitch
class i) and root (-1: none).
"""

from __future__ import annotations

import os
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from ..events import NoteSequence
from ..model import controls as ctl
from ..model.controls import STYLE_CORPUS
from ..model.tokens import FIELDS, START, encode
from .data import DEFAULT_VELOCITY, Split, _corpus_sources, _score_to_tokens, cache_dir, load_collection, read_cache
from .data import save_cache, split_by_piece

STYLE_OF = {corpus: style for style, corpus in STYLE_CORPUS.items()}
PART_ROLES = {"soprano": "melody", "alto": "inner", "tenor": "inner", "bass": "bass"}
# Pieces per collection when a whole collection would take too long to parse (files, in sorted order)
SUBSETS = {"essenFolksong": 12}

# Chord templates (intervals above the root): triads first, then sevenths
TEMPLATES = ((0, 4, 7), (0, 3, 7), (0, 3, 6), (0, 4, 8), (0, 4, 7, 10), (0, 4, 7, 11), (0, 3, 7, 10),
             (0, 3, 6, 10), (0, 3, 6, 9))


def best_chord(mask: int, bass: int | None = None, scale: frozenset[int] | None = None) -> tuple[int, int]:
    """The root of a set of pitch classes (a 12-bit mask) and its template's tones as a mask; (-1, 0) when fewer
    than two sound.

    Every pitch class of the set is tried as the root of every template (major, minor, diminished,
    augmented triads; dominant, major, minor, half-diminished and diminished sevenths): a template
    scores 2 per chord tone present, -1 per template tone missing, -1 per sounding tone outside it.
    The best score wins; on a tie the lowest-sounding pitch class (`bass`) wins, then the smaller
    template (triads before sevenths), then the lower pitch class, so the result is deterministic.
    Given the key's `scale`, a tie goes first to the template with more tones in it (C# and F# in A major:
    F# minor, not F# major); the training data is built without it.
    """
    present = [pc for pc in range(12) if mask >> pc & 1]
    if len(present) < 2:
        return -1, 0
    best, best_key = (-1, 0), None
    for root in present:
        for order, template in enumerate(TEMPLATES):
            tones = {(root + step) % 12 for step in template}
            hits = sum(1 for pc in present if pc in tones)
            score = 2 * hits - (len(tones) - hits) - (len(present) - hits)
            fit = 0 if scale is None else len(tones & scale)
            key = (score, root == bass, fit, -order, -root)
            if best_key is None or key > best_key:
                best, best_key = (root, sum(1 << pc for pc in tones)), key
    return best


def chord_root(mask: int, bass: int | None = None) -> int:
    """The root `best_chord` finds (-1: none)."""
    return best_chord(mask, bass)[0]


def _part_notes(part) -> list[tuple[float, float, int, int]]:
    """(onset, duration, midi, velocity) of a part's notes in beats, ties merged, grace notes left out."""
    out = []
    for element in part.stripTies().flatten().notes:
        duration = float(element.quarterLength)
        if duration <= 0:
            continue
        velocity = element.volume.velocity if element.volume.velocity else DEFAULT_VELOCITY
        for pitch in element.pitches:
            out.append((float(element.offset), duration, int(pitch.midi), int(velocity)))
    return sorted(out)


def _sounding(parts: list[list[tuple]], onset: float, skip: int | None) -> tuple[int, int | None]:
    """The pitch-class mask of every part but `skip` sounding at `onset`, and its lowest pitch class."""
    mask, lowest = 0, None
    for k, notes in enumerate(parts):
        if k == skip:
            continue
        for start, duration, midi, _ in notes:
            if start > onset + 1e-6:
                break
            if start + duration > onset + 1e-6:
                mask |= 1 << (midi % 12)
                lowest = midi if lowest is None or midi < lowest else lowest
    return mask, None if lowest is None else lowest % 12


def _line(notes: list[tuple], parts: list[list[tuple]], skip: int | None) -> np.ndarray:
    """One line's tokens with the harmony (mask, root) at each note's onset, as an (n, 6) array."""
    tokens = encode(NoteSequence.from_absolute(notes, "beats"))
    onsets = sorted(n[0] for n in notes)  # from_absolute orders notes by onset, as here
    harmony = np.empty((len(tokens), 2), dtype=np.int64)
    for i, onset in enumerate(onsets):
        mask, bass = _sounding(parts, onset, skip)
        harmony[i] = (mask, chord_root(mask, bass))
    return np.concatenate([tokens, harmony], axis=1)


def _parse_chorale(source: tuple[str, str]) -> list[tuple[str, np.ndarray]]:
    """A chorale's four parts (when it has exactly Soprano, Alto, Tenor, Bass) and its texture, as lines."""
    kind, path = source
    from music21 import corpus

    try:
        score = corpus.parse(path)
        name = f"{kind}:{Path(path).name}:0"
        parts = {p.partName.strip().lower() if p.partName else "": p for p in score.parts}
        texture = _score_to_tokens(score)
    except Exception:  # one odd file must not stop the run
        return []
    if texture is None:
        return []
    lines: list[tuple[str, np.ndarray]] = []
    if set(parts) >= set(PART_ROLES):
        voice_notes = [_part_notes(parts[v]) for v in PART_ROLES]
        for k, (voice, role) in enumerate(PART_ROLES.items()):
            if len(voice_notes[k]) >= 8:
                lines.append((f"{name}#{k}#{role}", _line(voice_notes[k], voice_notes, skip=k)))
        merged = sorted(n for notes in voice_notes for n in notes)
        lines.append((f"{name}#4#texture", _line(merged, voice_notes, skip=None)))
    else:  # not SATB (instrumental parts): the texture alone, with the full slice as its harmony
        notes = sorted(n for p in score.parts for n in _part_notes(p))
        lines.append((f"{name}#0#texture", _line(notes, [notes], skip=None)))
    return lines


def _cache_path(collection: str, limit: int | None) -> Path:
    return cache_dir() / (f"stage-{collection}.npz" if limit is None else f"stage-{collection}-first{limit}.npz")


def load_lines(collection: str, limit: int | None = None, workers: int = 2) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Piece name -> its lines [(role, (n, 6) array)], parsed once (2 processes), then cached."""
    cache = _cache_path(collection, limit)
    if (flat := read_cache(cache)) is None:
        if collection == "chorales":
            os.environ.setdefault("TMPDIR", str(cache_dir().parent / "tmp"))
            Path(os.environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)
            with Pool(workers) as pool:
                parsed = pool.map(_parse_chorale, _corpus_sources("chorales")[:limit], chunksize=4)
            flat = {key: array for chunk in parsed for key, array in chunk}
        else:  # single melodies: the collection's usual tokens, role melody, no harmony
            pieces = load_collection(collection, limit, workers)
            none = np.array([[0, -1]], dtype=np.int64)
            flat = {f"{name}#0#melody": np.concatenate([t, np.repeat(none, len(t), 0)], 1) for name, t in pieces.items()}
        save_cache(cache, flat)
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for key in sorted(flat, key=lambda k: (k.rsplit("#", 2)[0], int(k.rsplit("#", 2)[1]))):
        name, _, role = key.rsplit("#", 2)
        out.setdefault(name, []).append((role, flat[key]))
    return out


def load_stage_corpus(collections: list[str], limits: dict[str, int | None] | None = None) -> dict[str, dict]:
    """Piece name -> {"style": ..., "lines": [(role, array)]} over several collections."""
    limits = SUBSETS if limits is None else limits
    pieces: dict[str, dict] = {}
    for collection in collections:
        style = STYLE_OF[collection]
        for name, lines in load_lines(collection, limits.get(collection)).items():
            pieces[name] = {"style": style, "lines": lines}
    return pieces


_BITS = np.arange(12)
START_ROW = np.array([[START[f] for f in FIELDS]], dtype=np.int64)


def rotate(masks: np.ndarray, roots: np.ndarray, semitones: int) -> tuple[np.ndarray, np.ndarray]:
    """Chord masks and roots (-1: none) moved by some semitones, as the notes above them were."""
    s = semitones % 12
    moved = ((masks << s) | (masks >> (12 - s))) & 0xFFF if s else masks
    return moved, np.where(roots >= 0, (roots + s) % 12, -1)


def _key_row(tonic: int | None, mode: str) -> np.ndarray:
    from ..model.sampling import SCALES

    if tonic is None:
        return ctl.key_histogram(None)
    return ctl.key_histogram(frozenset((tonic + d) % 12 for d in SCALES[mode]), tonic, mode == "minor")


def key_profile(pitches: np.ndarray) -> np.ndarray:
    """The key profile (12 shares) of the key the listener's tracker hears in a line, every note alike: the row
    the duet gives a model (engine/phrasecontrols.py) and game mode gives from its key; uniform when no key."""
    from ..listen.keys import KeyTracker

    tracker = KeyTracker(decay_s=1e9, margin=0.0)
    for i, pitch in enumerate(pitches):
        tracker.add(int(pitch) % 12, i)
    return _key_row(*tracker.estimate()[:2])


def key_profiles_before(pitches: np.ndarray) -> np.ndarray:
    """Each note's key profile as a listener knows it then: the key heard in the notes before it (uniform until the
    tracker names one), never the note itself (benchmarks/stage_nll.py)."""
    from ..listen.keys import KeyTracker

    tracker, out, rows = KeyTracker(decay_s=1e9, margin=0.0), np.empty((len(pitches), 12), np.float32), {}
    for i, pitch in enumerate(pitches):
        key = tuple(tracker.estimate()[:2])
        if key not in rows:
            rows[key] = _key_row(*key)
        out[i] = rows[key]
        tracker.add(int(pitch) % 12, i)
    return out


def line_controls(tokens: np.ndarray, velocities: np.ndarray | None, masks: np.ndarray, roots: np.ndarray,
                  role: str | None, style: str | None, key_shares: str = "window", measured: str = "around",
                  key_rows: np.ndarray | None = None) -> np.ndarray:
    """The full control rows of one line: measured at each note, then harmony, role and style.

    A group given as None (role, style) or with all-zero masks (harmony) stays all zeros: not known.
    `measured` "around": density, register and dynamics of the +-4 beats around each note, the note included;
    "before": of the notes before it only (controls.measure_before), as a listener knows them.
    `key_shares` "window": the pitch-class shares of that window (around: the note included, and a model so
    trained reads the coming notes off them); "profile": a key profile, the key the notes are in, which tells
    the key and not the notes: the whole line's (around) or the key heard before each note (before;
    `key_rows` gives them ready, as key_profiles_before makes them).
    """
    if measured == "before":
        c = ctl.measure_before(tokens, velocities)
        if key_shares == "profile":
            c[:, ctl.PITCH_CLASS_SLICE] = key_profiles_before(tokens[:, 0]) if key_rows is None else key_rows
    else:
        c = ctl.measure(tokens, velocities)
        if key_shares == "profile":
            c[:, ctl.PITCH_CLASS_SLICE] = key_profile(tokens[:, 0])
    c[:, ctl.CHORD_SLICE] = (masks[:, None] >> _BITS) & 1
    has_root = roots >= 0
    c[np.flatnonzero(has_root), ctl.ROOT_SLICE.start + roots[has_root]] = 1.0
    if role is not None:
        c[:, ctl.INDEX[f"role_{role}"]] = 1.0
    if style is not None:
        c[:, ctl.INDEX[f"style_{style}"]] = 1.0
    return c


def example(line: np.ndarray, role: str | None, style: str | None, velocities: np.ndarray | None = None,
            key_shares: str = "window", measured: str = "around",
            key_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, controls, targets) of one (n, 6) line as it is: the model hears note t-1 and the controls of t."""
    tokens = line[:, :4]
    controls = line_controls(tokens, velocities, line[:, 4], line[:, 5], role, style, key_shares, measured,
                             key_rows).astype(np.float32)
    return np.concatenate([START_ROW, tokens[:-1]]), controls, tokens


def lines_of(pieces: dict[str, dict]) -> list[tuple[np.ndarray, str, str]]:
    """Every (line, role, style) of some pieces, in name order."""
    return [(array, role, entry["style"]) for _, entry in sorted(pieces.items()) for role, array in entry["lines"]]


def describe(split: Split) -> dict:
    """Pieces, lines and notes per part of the split, and lines per role and style."""
    out = {}
    for part in ("train", "valid", "test"):
        lines = lines_of(getattr(split, part))
        out[part] = {"pieces": len(getattr(split, part)), "lines": len(lines), "notes": int(sum(len(a) for a, _, _ in lines)),
                     "lines_by_role": {r: sum(1 for _, role, _ in lines if role == r) for r in ctl.ROLES},
                     "lines_by_style": {s: sum(1 for _, _, style in lines if style == s) for s in ctl.STYLES}}
    return out


def held_out_pieces(card: dict, quick: bool = False) -> dict[str, dict]:
    """The test pieces of a stage model's card (their lines), rebuilt from its corpus and seed and checked
    against the names the card records. Quick: the first 40 chorales and 3 files of other collections."""
    from ..errors import InputError

    training = card["training"]
    limits = {c: ({"chorales": 40}.get(c, 3)) for c in training["corpus"]} if quick else SUBSETS
    if training.get("limit") is not None and not quick:
        limits = {c: training["limit"] for c in training["corpus"]}
    split = split_by_piece(load_stage_corpus(training["corpus"], limits), seed=training.get("split", {}).get("seed", 0))
    names = set(training.get("split", {}).get("test", {}).get("names", []))
    strays = sorted(set(split.test) - names) if quick else sorted(set(split.test) ^ names)
    if strays:
        raise InputError(f"{card['graph']}: the evaluated split is not the card's ({len(strays)} test pieces differ, "
                         f"first: {strays[0]})")
    return split.test


def main() -> None:
    """Parse (and cache) the stage corpus: `python -m realtime.training.stagedata`."""
    import time

    for collection in STYLE_OF:
        t0 = time.time()
        lines = load_lines(collection, SUBSETS.get(collection))
        n = sum(len(a) for ls in lines.values() for _, a in ls)
        print(f"{collection}: {len(lines)} pieces, {sum(len(v) for v in lines.values())} lines, {n} notes "
              f"({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
