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
from .leadsheet.parse import parse_text
from .leadsheet.progression import parse_key
from .model.sampling import key_pitch_classes
from .settings import CONTROL_TARGETS, GAME_CONTROLS, GAME_CURVES, LISTEN_RANGES, LISTEN_ZONES, RANGES, TEMPO_SOURCES
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


def _fail(path: str, where: str, problem: str) -> None:
    raise PatchError(f"{path}: [{where}] {problem}")


def _between(path: str, where: str, key: str, value: float | None, low: float, high: float, unit: str = "") -> None:
    if value is not None and not low <= value <= high:
        _fail(path, where, f"{key} must be between {low:g} and {high:g}{unit}, got {value}")


def _shared(path: str, where: str, key: str, value: float | None, name: str | None = None) -> None:
    """A value whose range is one of the shared RANGES."""
    r = RANGES[name or key]
    _between(path, where, key, value, r.low, r.high)


def _channel(path: str, where: str, key: str, channel: int) -> None:
    if not 1 <= channel <= 16:
        _fail(path, where, f"{key} must be a MIDI channel 1-16, got {channel}")


def _pitch_limits(path: str, where: str, lowest: int, highest: int, max_polyphony: int | None) -> None:
    if not 0 <= lowest <= highest <= 127:
        _fail(path, where, f"lowest/highest must satisfy 0 <= lowest <= highest <= 127, got {lowest}, {highest}")
    _between(path, where, "max_polyphony", max_polyphony, 1, 16)


def _key(path: str, where: str, key: str | None, sep: str = ":") -> None:
    if key is not None:
        try:
            key_pitch_classes(key)
        except ValueError as err:
            _fail(path, where, f"key{sep} {err}")


STAGE_MODES = ("continuation", "harmonize", "accompany", "trade", "leadsheet")  # what a live switch can hold (modes.py MAKERS)


def _modes(path: str, mode: str, modes: tuple[str, ...]) -> None:
    """[engine] modes: stage modes only, each once, the starting mode among them."""
    if not modes:
        return
    for name in modes:
        if name not in STAGE_MODES:
            _fail(path, "engine", f"modes: {name!r} cannot be switched live (stage modes: {', '.join(STAGE_MODES)})")
    if len(set(modes)) != len(modes):
        _fail(path, "engine", f"modes lists a mode twice: {list(modes)}")
    if mode not in modes:
        _fail(path, "engine", f"mode {mode!r} must be one of modes {list(modes)} (the one the session starts in)")


def check_patch(path: str, patch) -> None:
    """Ranges and choices of the plain sections (the game's are `check_game`'s)."""
    e, m, c, midi, osc, synth = patch.engine, patch.model, patch.continuation, patch.midi, patch.osc, patch.synth
    if e.mode not in ("continuation", "game", *STAGE_MODES[1:]):
        _fail(path, "engine", f"mode must be \"continuation\", \"game\", \"harmonize\", \"accompany\", \"trade\" or "
                              f"\"leadsheet\", got {e.mode!r}")
    if e.mode == "game" and patch.game is None:
        _fail(path, "engine", "mode is \"game\" but the patch has no [game] section")
    _modes(path, e.mode, e.modes)
    _between(path, "engine", "beats_per_bar", e.beats_per_bar, 1, 16)
    _between(path, "engine", "budget_ms", e.budget_ms, 0.5, 500, " milliseconds")
    _shared(path, "engine", "tempo_bpm", e.tempo_bpm)
    _shared(path, "model", "temperature", m.temperature)
    _shared(path, "model", "top_p", m.top_p)
    _key(path, "model", m.key, sep="")
    _pitch_limits(path, "model", m.lowest, m.highest, m.max_polyphony)
    if m.fallback not in ("markov", "none"):
        _fail(path, "model", f"fallback must be \"markov\" or \"none\", got {m.fallback!r}")
    _shared(path, "continuation", "phrase_end_ms", c.phrase_end_ms)
    _between(path, "continuation", "phrase_end_beats", c.phrase_end_beats, 0.05, 32)
    _shared(path, "continuation", "answer_notes", c.answer_notes)
    _between(path, "continuation", "answer_beats", c.answer_beats, 0.25, 256)
    _between(path, "continuation", "lookahead_ms", c.lookahead_ms, 0, 2000)
    _channel(path, "continuation", "channel", c.channel)
    _shared(path, "continuation", "blend", c.blend)
    _shared(path, "continuation", "register", c.register)
    if c.memory is not None and (not c.memory.strip() or c.memory.endswith(("/", "\\"))):
        _fail(path, "continuation", f"memory must name a file, e.g. \"player.markov\", got {c.memory!r}")
    if midi.backend is not None and midi.backend not in MIDI_BACKENDS:
        _fail(path, "midi", f"backend must be one of {', '.join(MIDI_BACKENDS)}, got {midi.backend!r}")
    _between(path, "midi", "latency_ms", midi.latency_ms, 0, 500, " milliseconds")
    for key, port in (("port", osc.port), ("out_port", osc.out_port)):
        if not 0 <= port <= 65535:
            _fail(path, "osc", f"{key} must be a UDP port 0-65535, got {port}")
    if synth.kind not in SYNTHS:
        _fail(path, "synth", f"kind must be one of {', '.join(SYNTHS)}, got {synth.kind!r}")
    _between(path, "link", "quantum", patch.link.quantum, 1, 64, " beats")
    if patch.link.enabled and e.mode != "game":
        _fail(path, "link", "enabled needs engine.mode = \"game\" (the mode with a beat grid)")
    if not 0 < synth.gain <= 5:
        _fail(path, "synth", f"gain must be between 0 and 5, got {synth.gain}")
    check_listen(path, patch.listen)
    check_harmonize(path, patch.harmonize)
    from .shapepatch import answer_shape  # reads the rhythm file and the mood table: every name checked now

    answer_shape(patch)
    for name, r in CRITIC_RANGES.items():  # [critic]: the duet's best of K
        _between(path, "critic", name, getattr(patch.critic, name), r.low, r.high)
    if patch.critic.candidates > 1 and "continuation" not in (e.modes or (e.mode,)):
        _fail(path, "critic", "candidates > 1 judges the duet's fragments: it needs mode \"continuation\"")
    check_accompany(path, patch.accompany)
    check_trade(path, patch.trade)
    check_leadsheet(path, patch.leadsheet, e.beats_per_bar)
    if patch.listen.tempo_source == "midi_clock" and not midi.enabled:
        _fail(path, "listen", "tempo_source = \"midi_clock\" needs [midi] enabled (the clock comes in there)")


def check_listen(path: str, listen) -> None:
    """[listen]: its choices, and every number within its LISTEN_RANGES entry."""
    for key, value, choices in (("zone", listen.zone, LISTEN_ZONES), ("tempo_source", listen.tempo_source,
                                                                    TEMPO_SOURCES)):
        if value not in choices:
            _fail(path, "listen", f"{key} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
    for name, r in LISTEN_RANGES.items():
        _between(path, "listen", name, getattr(listen, name), r.low, r.high, f" {r.unit}" if r.unit in ("ms", "s") else "")


def check_harmonize(path: str, harmonize) -> None:
    """[harmonize]: placement, a channel of its own (never the player's 1), every number within HARMONIZE_RANGES."""
    if harmonize.placement not in HARMONIZE_PLACEMENTS:
        _fail(path, "harmonize", f"placement must be \"below\" or \"above\", got {harmonize.placement!r}")
    if harmonize.channel == 1:
        _fail(path, "harmonize", "channel 1 is the player's: put the harmony on a channel of its own, 2-16")
    for name, r in HARMONIZE_RANGES.items():
        _between(path, "harmonize", name, getattr(harmonize, name), r.low, r.high)
    if harmonize.lowest > harmonize.highest:
        _fail(path, "harmonize", f"lowest must not be above highest, got {harmonize.lowest}, {harmonize.highest}")


def check_accompany(path: str, accompany) -> None:
    """[accompany]: patterns, channels of their own (never the player's 1, not shared), registers an octave wide."""
    a = accompany
    for key, value, choices in (("bass_pattern", a.bass_pattern, BASS_PATTERNS),
                                ("chord_pattern", a.chord_pattern, CHORD_PATTERNS)):
        if value not in choices:
            _fail(path, "accompany", f"{key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    for key in ("bass_channel", "chord_channel"):
        if getattr(a, key) == 1:
            _fail(path, "accompany", f"{key} 1 is the player's: put the accompaniment on channels of its own, 2-16")
    for name, r in ACCOMPANY_RANGES.items():
        _between(path, "accompany", name, getattr(a, name), r.low, r.high, " ms" if r.unit == "ms" else "")
    if a.bass_channel == a.chord_channel:
        _fail(path, "accompany", f"bass_channel and chord_channel must differ, both are {a.bass_channel}")
    for part in ("bass", "chord"):
        lowest, highest = getattr(a, f"{part}_lowest"), getattr(a, f"{part}_highest")
        if highest - lowest < 12:
            _fail(path, "accompany", f"{part}_lowest..{part}_highest must span an octave at least (every root "
                  f"has a place), got {lowest}..{highest}")


def check_trade(path: str, trade) -> None:
    """[trade]: who starts, what a silent turn means, every number within TRADE_RANGES."""
    for key, value, choices in (("starts", trade.starts, TRADE_STARTS), ("on_silence", trade.on_silence, TRADE_SILENCE)):
        if value not in choices:
            _fail(path, "trade", f"{key} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
    for name, r in TRADE_RANGES.items():
        _between(path, "trade", name, getattr(trade, name), r.low, r.high, " ms" if r.unit == "ms" else "")


def check_leadsheet(path: str, leadsheet, beats_per_bar: int) -> None:
    """[leadsheet]: the progression read now (a bad token is this one line, not a failure on stage), the key,
    the start, patterns, channels of their own (never the player's 1, none shared), every number in range."""
    ls = leadsheet
    if ls.key is not None and parse_key(ls.key) is None:
        _fail(path, "leadsheet", f"key {ls.key!r} is not a key (write e.g. \"Bb\", \"c\", \"F# minor\")")
    if 1 <= beats_per_bar <= 16:
        try:
            parse_text(ls.progression, ls.key, beats_per_bar)
        except LeadSheetError as err:
            _fail(path, "leadsheet", f"progression: {str(err).removeprefix('leadsheet: ')}")
    for key, value, choices in (("start", ls.start, LEADSHEET_STARTS), ("bass_pattern", ls.bass_pattern, BASS_PATTERNS),
                                ("chord_pattern", ls.chord_pattern, CHORD_PATTERNS)):
        if value not in choices:
            _fail(path, "leadsheet", f"{key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    channels = ("bass_channel", "chord_channel") + (("melody_channel",) if ls.melody else ())
    for key in channels:
        if getattr(ls, key) == 1:
            _fail(path, "leadsheet", f"{key} 1 is the player's: put the band on channels of its own, 2-16")
    for name, r in LEADSHEET_RANGES.items():
        _between(path, "leadsheet", name, getattr(ls, name), r.low, r.high, " ms" if r.unit == "ms" else "")
    for i, a in enumerate(channels):
        for b in channels[i + 1:]:
            if getattr(ls, a) == getattr(ls, b):
                _fail(path, "leadsheet", f"{a} and {b} must differ, both are {getattr(ls, a)}")


def control_source(where: str, source: Any) -> None:
    cc = isinstance(source, str) and source.startswith("cc:") and source[3:].isdigit() and int(source[3:]) < 128
    if not (cc or isinstance(source, str) and source.startswith("osc:") and len(source) > 4):
        raise PatchError(f"{where} source must be \"cc:<0-127>\" or \"osc:<name>\", got {source!r}")


def control_target(where: str, target: Any) -> tuple[float, float]:
    if target not in CONTROL_TARGETS:
        raise PatchError(f"{where} target must be one of {', '.join(CONTROL_TARGETS)}, got {target!r}")
    return CONTROL_TARGETS[target].low, CONTROL_TARGETS[target].high


def check_game(path: str, game) -> None:
    """[game]: ranges, and every name a voice, state or map refers to."""
    _between(path, "game", "beats_per_bar", game.beats_per_bar, 1, 16)
    _between(path, "game", "smoothing_ms", game.smoothing_ms, 0, 60_000)
    _between(path, "game", "lookahead_ms", game.lookahead_ms, 5, 1000)
    if not game.voices or not game.states:
        _fail(path, "game", "needs at least one [game.voices.NAME] and one [game.states.NAME]")
    params, voices = {p.name for p in game.params}, {v.name for v in game.voices}
    for p in game.params:
        if not p.min < p.max or not p.min <= p.initial <= p.max:
            _fail(path, f"game.params.{p.name}",
                  f"needs min < max and initial within them, got {p.min}, {p.max}, {p.initial}")
    for v in game.voices:
        where = f"game.voices.{v.name}"
        _channel(path, where, "channel", v.channel)
        _pitch_limits(path, where, v.lowest, v.highest, v.max_polyphony)
        for control in ("register", "density", "polyphony", "dynamics", "gain", "temperature"):
            _shared(path, where, control, getattr(v, control))
        if v.enter_param is not None and v.enter_param not in params:
            _fail(path, where,
                  f"enter_param {v.enter_param!r} is not a [game.params] name ({', '.join(params) or 'none'})")
        if v.osc_prefix is not None and (not v.osc_prefix.startswith("/") or v.osc_prefix.endswith("/")):
            _fail(path, where, f"osc_prefix must look like '/melody', got {v.osc_prefix!r}")
    for st in game.states:
        where = f"game.states.{st.name}"
        _key(path, where, st.key)
        unknown = [v for v in st.voices if v not in voices]
        if unknown:
            _fail(path, where, f"voices {unknown} are not [game.voices] names ({', '.join(voices)})")
        _shared(path, where, "tempo_bpm", st.tempo_bpm)
    if game.initial_state is not None and game.initial_state not in {st.name for st in game.states}:
        _fail(path, "game", f"initial_state {game.initial_state!r} is not a [game.states] name")
    for ev in game.events:
        where = f"game.events.{ev.name}"
        if not ev.notes or not all(-48 <= n <= 48 for n in ev.notes) or not 0 <= ev.base <= 127:
            _fail(path, where, "notes must be 1 or more semitone offsets within -48..48, and base a MIDI pitch")
        if not (0.01 <= ev.step_beats <= 16 and 0.01 <= ev.duration_beats <= 16):
            _fail(path, where, "step_beats and duration_beats must be 0.01-16")
        if not 1 <= ev.velocity <= 127 or not 1 <= ev.channel <= 16:
            _fail(path, where, f"velocity must be 1-127 and channel 1-16, got {ev.velocity}, {ev.channel}")
    for i, m in enumerate(game.maps):
        where = f"game.map #{i + 1}"
        if m.param not in params:
            _fail(path, where, f"param {m.param!r} is not a [game.params] name ({', '.join(params) or 'none'})")
        if m.control not in GAME_CONTROLS:
            _fail(path, where, f"control must be one of {', '.join(GAME_CONTROLS)}, got {m.control!r}")
        r = GAME_CONTROLS[m.control]
        if not (m.min in r and m.max in r):
            _fail(path, where, f"min and max for {m.control} must lie in {r.low}..{r.high}")
        if m.curve not in GAME_CURVES:
            _fail(path, where, f"curve must be one of {', '.join(GAME_CURVES)}, got {m.curve!r}")
        unknown = [v for v in m.voices if v not in voices]
        if unknown:
            _fail(path, where, f"voices {unknown} are not [game.voices] names")
