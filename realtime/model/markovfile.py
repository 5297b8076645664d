"""A Markov model's counts in a file, kept from one show to the next (the duet's memory of the player).

JSON, not pickle: reading a file runs no code, a person can look inside, and every value is checked
before it is believed. One version of the format so far; a file names its format, version, order and
vocabulary, then every remembered context with what followed it and how often:

    {"format": "realtime-markov", "version": 1, "max_order": 4, "vocab_size": 128,
     "contexts": [[[], [[60, 12], [62, 9]]], [[60], [[62, 7]]], ...]}

Writing is atomic (a temporary file beside the target, renamed over it), so a show stopped mid-write,
or a full disk, leaves the previous memory whole. Reading raises `MemoryFileError`, one line naming
the file and the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import MemoryFileError
from .markov import Context, MarkovModel

FORMAT = "realtime-markov"
VERSION = 1
MAX_ORDER = 32  # far beyond any useful context; a larger number is a foreign or damaged file


def save_counts(path: str | Path, counts: dict[Context, dict[int, int]], max_order: int,
                vocab_size: int = 128) -> int:
    """Write counts (from `MarkovModel.counts()`) to `path` atomically; returns the bytes written."""
    path = Path(path)
    document = {"format": FORMAT, "version": VERSION, "max_order": max_order, "vocab_size": vocab_size,
                "contexts": [[list(context), [[note, n] for note, n in followers.items()]]
                             for context, followers in counts.items()]}
    text = json.dumps(document, separators=(",", ":"))
    temporary = path.with_name(f".{path.name}.saving")
    try:
        with open(temporary, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise MemoryFileError(f"{path}: could not save the memory ({err.strerror or err})") from None
    return len(text)


def load_model(path: str | Path, expect_vocab: int = 128, max_contexts: int | None = None,
               uniform_floor: bool = True) -> MarkovModel:
    """The model a memory file holds, every value checked; MemoryFileError names the file and the problem."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except IsADirectoryError:
        raise MemoryFileError(f"{path}: is a folder, not a memory file") from None
    except OSError as err:
        raise MemoryFileError(f"{path}: cannot read it ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise MemoryFileError(f"{path}: not a memory file (not text)") from None
    except json.JSONDecodeError as err:
        raise MemoryFileError(f"{path}: not a memory file, or cut short (JSON: {err.msg} at line {err.lineno})") \
            from None
    try:
        max_order, counts = _checked(document, expect_vocab)
        return MarkovModel.from_counts(counts, max_order, expect_vocab, max_contexts, uniform_floor)
    except ValueError as err:
        raise MemoryFileError(f"{path}: {err}") from None


def _whole(value, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{what} must be a whole number {low}-{high}, got {json.dumps(value)[:40]}")
    return value


def _checked(document, expect_vocab: int) -> tuple[int, dict[Context, dict[int, int]]]:
    """Format, version, order, vocabulary, then every context and its followers, by type and range."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a memory file (no \"format\": \"{FORMAT}\")")
    if document.get("version") != VERSION:
        raise ValueError(f"memory format version {json.dumps(document.get('version'))[:20]}; this engine reads "
                         f"version {VERSION}")
    max_order = _whole(document.get("max_order"), "max_order", 0, MAX_ORDER)
    if document.get("vocab_size") != expect_vocab:
        raise ValueError(f"remembers {json.dumps(document.get('vocab_size'))[:20]} symbols, not the "
                         f"{expect_vocab} MIDI pitches")
    entries = document.get("contexts")
    if not isinstance(entries, list):
        raise ValueError("\"contexts\" must be a list")
    top = expect_vocab - 1
    counts: dict[Context, dict[int, int]] = {}
    for i, entry in enumerate(entries):
        where = f"context #{i + 1}"
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)
                and isinstance(entry[1], list)):
            raise ValueError(f"{where} must be [[notes...], [[note, count], ...]]")
        context = tuple(_whole(note, f"{where}: a note", 0, top) for note in entry[0])
        if context in counts:
            raise ValueError(f"{where} {list(context)} appears twice")
        followers: dict[int, int] = {}
        for pair in entry[1]:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ValueError(f"{where}: a follower must be [note, count], got {json.dumps(pair)[:40]}")
            note = _whole(pair[0], f"{where}: a note", 0, top)
            if note in followers:
                raise ValueError(f"{where}: note {note} is counted twice")
            followers[note] = _whole(pair[1], f"{where}: a count", 1, 2**53)
        counts[context] = followers
    return max_order, counts
