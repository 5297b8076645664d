"""The session log's format, shared by the recorder (record.py) and the replay (replay.py).

record.py's docstring lists the lines of session.events. Here: how an input is written and read
back (read back against the logged patch, so a tampered or foreign line is a one-line error naming
the file and line, never a KeyError deep in the engine), what a cancel took back, and the header.
"""

from __future__ import annotations

import json
from pathlib import Path

from .engine.gameparts import GameMessage
from .errors import RealtimeError
from .events import ControlChange, LearnRequest, MemoryRequest, NamedControl, NoteMessage, ShapeRequest

FORMAT = 1
HEADER_KEYS = ("patch", "patch_text", "model", "model_sha256", "origin_ns", "tempo_bpm")
GAME_KINDS = ("param", "state", "event", "tempo", "start", "stop")


class RecordError(RealtimeError, ValueError):
    """A session folder that cannot be recorded into or replayed."""


class Diverged(RecordError):
    """The replay asked for something the live engine did not: the log and the code disagree."""


def encode_input(message, at_ns: int) -> list:
    if isinstance(message, NoteMessage):
        return ["note", message.pitch, message.velocity, message.channel, at_ns]
    if isinstance(message, ControlChange):
        return ["cc", message.control, message.value, message.channel, at_ns]
    if isinstance(message, NamedControl):
        return ["named", message.name, message.value, at_ns]
    if isinstance(message, LearnRequest):
        return ["learn", message.target, at_ns]
    if isinstance(message, MemoryRequest):
        return ["memory", message.action, at_ns]
    if isinstance(message, ShapeRequest):
        return ["shape", message.what, message.text, at_ns]
    if isinstance(message, GameMessage):
        return ["game", message.kind, message.name, message.value, at_ns]
    if isinstance(message, bytes):  # MIDI clock in, for the game mode's clock follower
        return ["raw", message.hex(), at_ns]
    return ["unknown", repr(message), at_ns]


def decode_input(item: list, patch) -> tuple[object, int, bool]:
    """(message, arrival ns, whether it goes to the mode's own inbox); ValueError names what is wrong."""
    kind = item[0] if isinstance(item, list) and item else None
    game = patch.engine.mode == "game"
    try:
        if kind == "note":
            return NoteMessage(int(item[1]), int(item[2]), int(item[3])), int(item[4]), False
        if kind == "cc":
            return ControlChange(int(item[1]), int(item[2]), int(item[3])), int(item[4]), False
        if kind == "named":
            return NamedControl(str(item[1]), float(item[2])), int(item[3]), False
        if kind == "learn":
            return LearnRequest(str(item[1])), int(item[2]), False
        if kind == "memory":
            return MemoryRequest(str(item[1])), int(item[2]), False
        if kind == "shape":
            return ShapeRequest(str(item[1]), str(item[2])), int(item[3]), False
        if kind == "game" and game:
            message = GameMessage(str(item[1]), str(item[2]), float(item[3]))
            _check_game_message(message, patch.game)
            return message, int(item[4]), True
        if kind == "raw" and game:
            return bytes.fromhex(item[1]), int(item[2]), True
    except (IndexError, TypeError, ValueError) as err:
        raise ValueError(f"an input {json.dumps(item)[:80]} is malformed ({err})") from None
    raise ValueError(f"an input of kind {kind!r} cannot be replayed in {patch.engine.mode} mode")


def _check_game_message(message: GameMessage, game) -> None:
    names = {"param": [p.name for p in game.params], "state": [s.name for s in game.states],
             "event": [e.name for e in game.events]}
    if message.kind not in GAME_KINDS:
        raise ValueError(f"a game message of kind {message.kind!r}")
    if message.kind in names and message.name not in names[message.kind]:
        raise ValueError(f"the game {message.kind} {message.name!r} is not in the logged patch")


def marker(message: GameMessage) -> str:
    """A game message as a marker in session.mid: "state tense", "param intensity 0.900", "start"."""
    if message.kind == "param":
        return f"param {message.name} {message.value:.3f}"
    if message.kind == "tempo":
        return f"tempo {message.value:g}"
    return f"{message.kind} {message.name}".strip()


CUTS = ("cut", "cancel", "stop")  # lines after which the output held nothing: a cancel, or the engine's stop


def sounded(entries: list[dict]) -> tuple[list[list[int]], int]:
    """The log's sends, less the note-ons handed to a port ahead of a deadline that a later cancel (or the
    stop) came before, so the port took them back; and how many those were."""
    kept, taken_back, next_cut = [], 0, None
    for entry in reversed(entries):
        for key in CUTS:
            if key in entry:
                next_cut = entry[key] if next_cut is None else min(next_cut, entry[key])
        if "sent" in entry:
            if next_cut is not None and entry["sent"][0] > next_cut and entry["sent"][3] > 0:
                taken_back += 1
            else:
                kept.append(entry["sent"])
    kept.reverse()
    return kept, taken_back


def panic_times(entries: list[dict]) -> list[int]:
    """Every moment the output was cancelled (all notes off), in log order."""
    return [entry[key] for entry in entries for key in CUTS if key in entry]


def _ints(value, length: int | None = None) -> bool:
    return isinstance(value, list) and all(type(v) is int for v in value) and length in (None, len(value))


def _entry_problem(entry: dict) -> str | None:
    """What is wrong with a line after the header, as the replay would read it; None if nothing."""
    if "t" in entry and not (_ints(entry["t"]) and _ints(entry.get("n", [])) and isinstance(entry.get("in", []), list)):
        return "is a tick whose readings, held counts or inputs are not lists of the right kind"
    if "sent" in entry and not _ints(entry["sent"], 5):
        return "is a send that is not [deadline_ns, sent_ns, pitch, velocity, channel]"
    for key in (*CUTS, "start", "end"):
        if key in entry and type(entry[key]) is not int:
            return f"has a {key!r} that is not a time in ns"
    tempo = entry.get("tempo", [0, 120.0])
    if not (isinstance(tempo, list) and len(tempo) == 2 and type(tempo[0]) is int
            and isinstance(tempo[1], (int, float)) and tempo[1] > 0):
        return "has a 'tempo' that is not [ns, bpm]"
    return None


def read_session(directory: str | Path) -> list[tuple[int, dict]]:
    """(line number, entry) of every line of DIR/session.events; the header is checked."""
    path = Path(directory) / "session.events"
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}: line {number} is not JSON ({err.msg}); was the recording cut off?") from None
        problem = "is not a session entry (a JSON object)" if not isinstance(entry, dict) else \
            None if not entries else _entry_problem(entry)
        if problem:
            raise RecordError(f"{path}: line {number} {problem}")
        entries.append((number, entry))
    if not entries or entries[0][1].get("session") != FORMAT:
        raise RecordError(f"{path}: not a session log of format {FORMAT} (no header line)")
    header = entries[0][1]
    missing = [key for key in HEADER_KEYS if key not in header]
    if missing:
        raise RecordError(f"{path}: line {entries[0][0]}: the header lacks {', '.join(missing)}")
    anchor = header.get("tempo_anchor", [0, 0.0, 120.0])
    if type(header["origin_ns"]) is not int or not isinstance(header["patch_text"], str) or not (
            isinstance(anchor, list) and len(anchor) == 3 and all(isinstance(v, (int, float)) for v in anchor)):
        raise RecordError(f"{path}: line {entries[0][0]}: the header's origin_ns, patch_text or tempo_anchor "
                          "is not of its kind")
    return entries
