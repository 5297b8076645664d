"""Checking a patch: TOML values against the dataclass fields, then every range and cross-reference.

Helpers for realtime/patch.py. Each failure is one PatchError line naming the file, the key and the
problem; shared ranges come from realtime/settings.py (`RANGES`), so the README and the OSC table
state the same bounds the patch enforces.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from .errors import LeadSheetError, PatchError
from .io.ports import MIDI_BACKENDS
from .leadsheet.midichords import read_progression
from .leadsheet.progression import parse_key
from .model.sampling import key_pitch_classes
from .settings import CONTROL_TARGETS, LISTEN_RANGES, LISTEN_ZONES, RANGES, TEMPO_SOURCES
from .stagesettings import (ACCOMPANY_RANGES, BASS_PATTERNS, CHORD_PATTERNS, CRITIC_RANGES, HARMONIZE_PLACEMENTS,
                            HARMONIZE_RANGES, LEADSHEET_RANGES, LEADSHEET_STARTS, TRADE_RANGES, TRADE_SILENCE,
                            TRADE_STARTS)

SYNTHS = ("none", "builtin", "fluidsynth")
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def coerce(where: str, key: str, value: Any, annotation: str) -> Any:
    """Check one value against its field's annotation (as written in the dataclass)."""
    optional = "None" in annotation
    if value is None and optional:
        return None
    base = annotation.replace(" | None", "")
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PatchError(f"{where} {key} must be a number, got {value!r}")
        return float(value)
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise PatchError(f"{where} {key} must be a whole number, got {value!r}")
        return value
    if base == "str":
        if not isinstance(value, str):
            raise PatchError(f"{where} {key} must be a string, got {value!r}")
        return value
    if base == "bool":
        if not isinstance(value, bool):
            raise PatchError(f"{where} {key} must be true or false, got {value!r}")
        return value
    if base.startswith("tuple[int"):
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise PatchError(f"{where} {key} must be a list of whole numbers, got {value!r}")
        return tuple(value)
    if base.startswith("tuple[str"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PatchError(f"{where} {key} must be a list of strings, got {value!r}")
        return tuple(value)
    raise AssertionError(f"unhandled annotation {annotation}")


def read_toml(path: Path, what: str) -> dict:
    """A TOML file's tables; PatchError in one line naming the file when it is missing, unreadable or not TOML."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PatchError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PatchError(f"{path}: cannot read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise PatchError(f"{path}: TOML syntax error: {err}") from None


def section(path: str, name: str, cls: type, table: Any) -> Any:
    """A TOML table -> `cls`, every key known and of its field's type."""
    where = f"{path}: [{name}]"
    if not isinstance(table, dict):
        raise PatchError(f"{where} must be a table")
    known = {f.name: f for f in fields(cls)}
    for key in table:
        if key not in known:
            raise PatchError(f"{where} unknown key {key!r}; known keys: {', '.join(known)}")
    return cls(**{key: coerce(where, key, value, str(known[key].type)) for key, value in table.items()})


def named_tables(path: str, where: str, cls: type, table: Any, shorthand: str | None = None) -> tuple:
    """[game.voices.NAME] style tables -> one `cls` per NAME, in file order; a bare number is {shorthand = N}."""
    if not isinstance(table, dict):
        raise PatchError(f"{path}: [{where}] must be a table of named tables")
    out = []
    for name, entry in table.items():
        if not (0 < len(name) <= 64 and set(name) <= NAME_CHARS):
            raise PatchError(f"{path}: [{where}.{name}] names must be 1-64 letters, digits, '_', '.' or '-'")
        if shorthand and isinstance(entry, (int, float)) and not isinstance(entry, bool):
            entry = {shorthand: entry}  # intensity = 0.2 is short for { initial = 0.2 }
        if not isinstance(entry, dict) or "name" in entry:
            raise PatchError(f"{path}: [{where}.{name}] must be a table (without a 'name' key)")
        out.append(section(path, f"{where}.{name}", cls, entry | {"name": name}))
    return tuple(out)


def fail(path: str, where: str, problem: str) -> None:
    raise PatchError(f"{path}: [{where}] {problem}")


def check_between(path: str, where: str, key: str, value: float | None, low: float, high: float,
                  unit: str = "") -> None:
    if value is not None and not low <= value <= high:
        fail(path, where, f"{key} must be between {low:g} and {high:g}{unit}, got {value}")


def check_shared(path: str, where: str, key: str, value: float | None, name: str | None = None) -> None:
    """A value whose range is one of the shared RANGES."""
    r = RANGES[name or key]
    check_between(path, where, key, value, r.low, r.high)


def check_channel(path: str, where: str, key: str, channel: int) -> None:
    if not 1 <= channel <= 16:
        fail(path, where, f"{key} must be a MIDI channel 1-16, got {channel}")


def check_pitch_limits(path: str, where: str, lowest: int, highest: int, max_polyphony: int | None) -> None:
    if not 0 <= lowest <= highest <= 127:
        fail(path, where, f"lowest/highest must satisfy 0 <= lowest <= highest <= 127, got {lowest}, {highest}")
    check_between(path, where, "max_polyphony", max_polyphony, 1, 16)


def check_key(path: str, where: str, key: str | None, sep: str = ":") -> None:
    if key is not None:
        try:
            key_pitch_classes(key)
        except ValueError as err:
            fail(path, where, f"key{sep} {err}")


STAGE_MODES = ("continuation", "harmonize", "accompany", "trade", "leadsheet")  # what a live switch can hold (modes.py MAKERS)


def _modes(path: str, mode: str, modes: tuple[str, ...]) -> None:
    """[engine] modes: stage modes only, each once, the starting mode among them."""
    if not modes:
        return
    for name in modes:
        if name not in STAGE_MODES:
            fail(path, "engine", f"modes: {name!r} cannot be switched live (stage modes: {', '.join(STAGE_MODES)})")
    if len(set(modes)) != len(modes):
        fail(path, "engine", f"modes lists a mode twice: {list(modes)}")
    if mode not in modes:
        fail(path, "engine", f"mode {mode!r} must be one of modes {list(modes)} (the one the session starts in)")


def check_patch(path: str, patch) -> None:
    """Ranges and choices of the plain sections (the game's are `check_game`'s)."""
    e, m, c, midi, osc, synth = patch.engine, patch.model, patch.continuation, patch.midi, patch.osc, patch.synth
    if e.mode not in ("continuation", "game", *STAGE_MODES[1:]):
        fail(path, "engine", f"mode must be \"continuation\", \"game\", \"harmonize\", \"accompany\", \"trade\" or "
                              f"\"leadsheet\", got {e.mode!r}")
    if e.mode == "game" and patch.game is None:
        fail(path, "engine", "mode is \"game\" but the patch has no [game] section")
    _modes(path, e.mode, e.modes)
    check_between(path, "engine", "beats_per_bar", e.beats_per_bar, 1, 16)
    check_between(path, "engine", "budget_ms", e.budget_ms, 0.5, 500, " milliseconds")
    check_shared(path, "engine", "tempo_bpm", e.tempo_bpm)
    check_shared(path, "model", "temperature", m.temperature)
    check_shared(path, "model", "top_p", m.top_p)
    check_shared(path, "model", "style_guidance", m.style_guidance)
    check_key(path, "model", m.key, sep="")
    check_pitch_limits(path, "model", m.lowest, m.highest, m.max_polyphony)
    if m.fallback not in ("markov", "none"):
        fail(path, "model", f"fallback must be \"markov\" or \"none\", got {m.fallback!r}")
    check_shared(path, "continuation", "phrase_end_ms", c.phrase_end_ms)
    check_between(path, "continuation", "phrase_end_beats", c.phrase_end_beats, 0.05, 32)
    check_shared(path, "continuation", "answer_notes", c.answer_notes)
    check_between(path, "continuation", "answer_beats", c.answer_beats, 0.25, 256)
    check_between(path, "continuation", "lookahead_ms", c.lookahead_ms, 0, 2000)
    check_channel(path, "continuation", "channel", c.channel)
    check_shared(path, "continuation", "blend", c.blend)
    check_shared(path, "continuation", "key_pull", c.key_pull)
    check_shared(path, "continuation", "register", c.register)
    if c.memory is not None and (not c.memory.strip() or c.memory.endswith(("/", "\\"))):
        fail(path, "continuation", f"memory must name a file, e.g. \"player.markov\", got {c.memory!r}")
    if midi.backend is not None and midi.backend not in MIDI_BACKENDS:
        fail(path, "midi", f"backend must be one of {', '.join(MIDI_BACKENDS)}, got {midi.backend!r}")
    check_between(path, "midi", "latency_ms", midi.latency_ms, 0, 500, " milliseconds")
    for key, port in (("port", osc.port), ("out_port", osc.out_port)):
        if not 0 <= port <= 65535:
            fail(path, "osc", f"{key} must be a UDP port 0-65535, got {port}")
    if synth.kind not in SYNTHS:
        fail(path, "synth", f"kind must be one of {', '.join(SYNTHS)}, got {synth.kind!r}")
    check_between(path, "link", "quantum", patch.link.quantum, 1, 64, " beats")
    if patch.link.enabled and e.mode != "game":
        fail(path, "link", "enabled needs engine.mode = \"game\" (the mode with a beat grid)")
    if not 0 < synth.gain <= 5:
        fail(path, "synth", f"gain must be between 0 and 5, got {synth.gain}")
    check_listen(path, patch.listen)
    check_harmonize(path, patch.harmonize)
    from .shapepatch import answer_shape  # reads the rhythm file and the mood table: every name checked now

    answer_shape(patch)
    from .stylepatch import check_styles  # reads the model's card when the patch names a style

    check_styles(path, patch)
    for name, r in CRITIC_RANGES.items():  # [critic]: the duet's best of K
        check_between(path, "critic", name, getattr(patch.critic, name), r.low, r.high)
    if patch.critic.candidates > 1 and "continuation" not in (e.modes or (e.mode,)):
        fail(path, "critic", "candidates > 1 judges the duet's fragments: it needs mode \"continuation\"")
    check_accompany(path, patch.accompany)
    check_trade(path, patch.trade)
    check_leadsheet(path, patch.leadsheet, e.beats_per_bar)
    if patch.listen.tempo_source == "midi_clock" and not midi.enabled:
        fail(path, "listen", "tempo_source = \"midi_clock\" needs [midi] enabled (the clock comes in there)")


def check_listen(path: str, listen) -> None:
    """[listen]: its choices, and every number within its LISTEN_RANGES entry."""
    for key, value, choices in (("zone", listen.zone, LISTEN_ZONES), ("tempo_source", listen.tempo_source,
                                                                    TEMPO_SOURCES)):
        if value not in choices:
            fail(path, "listen", f"{key} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
    for name, r in LISTEN_RANGES.items():
        check_between(path, "listen", name, getattr(listen, name), r.low, r.high, f" {r.unit}" if r.unit in ("ms", "s") else "")


def check_harmonize(path: str, harmonize) -> None:
    """[harmonize]: placement, a channel of its own (never the player's 1), every number within HARMONIZE_RANGES."""
    if harmonize.placement not in HARMONIZE_PLACEMENTS:
        fail(path, "harmonize", f"placement must be \"below\" or \"above\", got {harmonize.placement!r}")
    if harmonize.channel == 1:
        fail(path, "harmonize", "channel 1 is the player's: put the harmony on a channel of its own, 2-16")
    for name, r in HARMONIZE_RANGES.items():
        check_between(path, "harmonize", name, getattr(harmonize, name), r.low, r.high)
    if harmonize.lowest > harmonize.highest:
        fail(path, "harmonize", f"lowest must not be above highest, got {harmonize.lowest}, {harmonize.highest}")


def check_accompany(path: str, accompany) -> None:
    """[accompany]: patterns, channels of their own (never the player's 1, not shared), registers an octave wide."""
    a = accompany
    for key, value, choices in (("bass_pattern", a.bass_pattern, BASS_PATTERNS),
                                ("chord_pattern", a.chord_pattern, CHORD_PATTERNS)):
        if value not in choices:
            fail(path, "accompany", f"{key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    for key in ("bass_channel", "chord_channel"):
        if getattr(a, key) == 1:
            fail(path, "accompany", f"{key} 1 is the player's: put the accompaniment on channels of its own, 2-16")
    for name, r in ACCOMPANY_RANGES.items():
        check_between(path, "accompany", name, getattr(a, name), r.low, r.high, " ms" if r.unit == "ms" else "")
    if a.bass_channel == a.chord_channel:
        fail(path, "accompany", f"bass_channel and chord_channel must differ, both are {a.bass_channel}")
    for part in ("bass", "chord"):
        lowest, highest = getattr(a, f"{part}_lowest"), getattr(a, f"{part}_highest")
        if highest - lowest < 12:
            fail(path, "accompany", f"{part}_lowest..{part}_highest must span an octave at least (every root "
                  f"has a place), got {lowest}..{highest}")


def check_trade(path: str, trade) -> None:
    """[trade]: who starts, what a silent turn means, every number within TRADE_RANGES."""
    for key, value, choices in (("starts", trade.starts, TRADE_STARTS), ("on_silence", trade.on_silence, TRADE_SILENCE)):
        if value not in choices:
            fail(path, "trade", f"{key} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
    for name, r in TRADE_RANGES.items():
        check_between(path, "trade", name, getattr(trade, name), r.low, r.high, " ms" if r.unit == "ms" else "")


def check_leadsheet(path: str, leadsheet, beats_per_bar: int) -> None:
    """[leadsheet]: the progression read now (a bad token is this one line, not a failure on stage), the key,
    the start, patterns, channels of their own (never the player's 1, none shared), every number in range."""
    ls = leadsheet
    if ls.key is not None and parse_key(ls.key) is None:
        fail(path, "leadsheet", f"key {ls.key!r} is not a key (write e.g. \"Bb\", \"c\", \"F# minor\")")
    if 1 <= beats_per_bar <= 16:
        try:
            read_progression(ls.progression, ls.key, beats_per_bar, folder=Path(path).parent)
        except LeadSheetError as err:
            fail(path, "leadsheet", f"progression: {str(err).removeprefix('leadsheet: ')}")
    for key, value, choices in (("start", ls.start, LEADSHEET_STARTS), ("bass_pattern", ls.bass_pattern, BASS_PATTERNS),
                                ("chord_pattern", ls.chord_pattern, CHORD_PATTERNS)):
        if value not in choices:
            fail(path, "leadsheet", f"{key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    channels = ("bass_channel", "chord_channel") + (("melody_channel",) if ls.melody else ())
    for key in channels:
        if getattr(ls, key) == 1:
            fail(path, "leadsheet", f"{key} 1 is the player's: put the band on channels of its own, 2-16")
    for name, r in LEADSHEET_RANGES.items():
        check_between(path, "leadsheet", name, getattr(ls, name), r.low, r.high, " ms" if r.unit == "ms" else "")
    for i, a in enumerate(channels):
        for b in channels[i + 1:]:
            if getattr(ls, a) == getattr(ls, b):
                fail(path, "leadsheet", f"{a} and {b} must differ, both are {getattr(ls, a)}")


def control_source(where: str, source: Any) -> None:
    cc = isinstance(source, str) and source.startswith("cc:") and source[3:].isdigit() and int(source[3:]) < 128
    if not (cc or isinstance(source, str) and source.startswith("osc:") and len(source) > 4):
        raise PatchError(f"{where} source must be \"cc:<0-127>\" or \"osc:<name>\", got {source!r}")


def control_target(where: str, target: Any) -> tuple[float, float]:
    if target not in CONTROL_TARGETS:
        raise PatchError(f"{where} target must be one of {', '.join(CONTROL_TARGETS)}, got {target!r}")
    return CONTROL_TARGETS[target].low, CONTROL_TARGETS[target].high
