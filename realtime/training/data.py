"""Training data: music21's offline corpus or the user's MIDI files, as cached token arrays.

Parsing a chorale takes ~100 ms, so each collection is parsed once (in parallel) and kept
as an `.npz` of token arrays under the cache folder. Splits are by piece with a fixed seed,
so no piece leaks between train, validation and test.
"""

from __future__ import annotations

import os
import sys
import zipfile
import zlib
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import NoteSequence, read_midi
from ..model.tokens import encode

COLLECTIONS = ("chorales", "essenFolksong", "oneills1850", "ryansMammoth")
DEFAULT_VELOCITY = 80  # the corpus carries no dynamics; mezzo-forte


def cache_dir() -> Path:
    root = Path(os.environ.get("REALTIME_CACHE", Path(__file__).resolve().parents[2] / ".cache"))
    return root / "corpus"


def save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A parsed collection, written whole or not at all: into a file of this process's own, then renamed into
    place. Two runs that parsed the corpus at once (two benchmarks started together) wrote one file together
    and left it unreadable for every later run ("BadZipFile: File name in directory ... and header ... differ")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez_compressed(temporary, **arrays)
    os.replace(temporary, path)


def read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """What save_cache wrote; None if there is none, or what is there cannot be read (it is parsed again)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        print(f"realtime: the corpus cache {path} cannot be read ({err}); parsing the corpus again", file=sys.stderr)
        return None


def _score_to_tokens(score) -> np.ndarray | None:
    """All notes of a music21 score (ties merged, parts merged) as tokens in beats."""
    notes = []
    for element in score.stripTies().flatten().notes:
        duration = float(element.quarterLength)
        if duration <= 0:  # grace notes
            continue
        velocity = element.volume.velocity if element.volume.velocity else DEFAULT_VELOCITY
        for pitch in element.pitches:
            notes.append((float(element.offset), duration, int(pitch.midi), int(velocity)))
    if len(notes) < 8:
        return None
    return encode(NoteSequence.from_absolute(notes, "beats"))


def _parse_one(source: tuple[str, str]) -> list[tuple[str, np.ndarray]]:
    """Parse one corpus path (a chorale, or an ABC file holding many tunes) into named pieces."""
    kind, path = source
    from music21 import corpus, stream

    try:
        parsed = corpus.parse(path)
    except Exception:  # music21 raises many kinds on odd ABC; one bad file must not stop the run
        return []
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    out = []
    for i, score in enumerate(scores):
        try:
            tokens = _score_to_tokens(score)
        except Exception:
            tokens = None
        if tokens is not None:
            out.append((f"{kind}:{Path(path).name}:{i}", tokens))
    return out


def _corpus_sources(collection: str) -> list[tuple[str, str]]:
    from music21 import corpus

    if collection == "chorales":  # the 371 four-part chorales, by the Iterator's own catalogue
        names = corpus.chorales.Iterator(returnType="filename")
        return [("chorales", str(corpus.getWork(name))) for name in names]
    if collection in COLLECTIONS:
        return [(collection, str(p)) for p in sorted(corpus.getComposer(collection))]
    raise InputError(f"unknown corpus collection {collection!r}; choose from {', '.join(COLLECTIONS)}")


def load_collection(collection: str, limit: int | None = None, workers: int = 2) -> dict[str, np.ndarray]:
    """Token arrays of one music21 collection (or its first `limit` files), parsed once, then cached."""
    cache = cache_dir() / (f"{collection}.npz" if limit is None else f"{collection}-first{limit}.npz")
    if (cached := read_cache(cache)) is not None:
        return dict(sorted(cached.items()))
    os.environ.setdefault("TMPDIR", str(cache_dir().parent / "tmp"))  # music21 keeps its own cache there
    Path(os.environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    sources = _corpus_sources(collection)[:limit]
    with Pool(workers) as pool:
        parsed = pool.map(_parse_one, sources, chunksize=4)
    pieces = {name: tokens for chunk in parsed for name, tokens in chunk}
    save_cache(cache, pieces)
    return dict(sorted(pieces.items()))


def load_midi_folder(folder: str | Path) -> dict[str, np.ndarray]:
    """Token arrays of every .mid/.midi file under a folder of the user's."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise InputError(f"{folder}: no .mid or .midi files found")
    return {str(p.relative_to(folder)): encode(read_midi(p)) for p in files}


@dataclass
class Split:
    train: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]
    test: dict[str, np.ndarray]

    def describe(self) -> dict:
        return {name: {"pieces": len(part), "notes": int(sum(len(t) for t in part.values()))}
                for name, part in (("train", self.train), ("valid", self.valid), ("test", self.test))}


def split_by_piece(pieces: dict[str, np.ndarray], seed: int = 0, valid: float = 0.1, test: float = 0.1) -> Split:
    """Assign whole pieces to train/valid/test by a seeded hash of their names (stable as data grows)."""
    parts: tuple[dict, dict, dict] = ({}, {}, {})
    for name, tokens in pieces.items():
        u = (zlib.crc32(f"{seed}:{name}".encode()) % 10_000) / 10_000
        parts[2 if u < test else 1 if u < test + valid else 0][name] = tokens
    return Split(*parts)


def transpose(tokens: np.ndarray, semitones: int, low: int = 21, high: int = 108) -> np.ndarray | None:
    """The piece moved by some semitones, or None when it would leave the piano's range."""
    pitches = tokens[:, 0] + semitones
    if pitches.min() < low or pitches.max() > high:
        return None
    out = tokens.copy()
    out[:, 0] = pitches
    return out


def augmented(pieces: dict[str, np.ndarray], semitones: range = range(-5, 7)) -> list[np.ndarray]:
    """Every training piece in every transposition that stays on the keyboard."""
    out = []
    for tokens in pieces.values():
        for shift in semitones:
            moved = transpose(tokens, shift)
            if moved is not None:
                out.append(moved)
    return out
