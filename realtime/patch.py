"""Patches: TOML files that wire inputs -> model -> outputs, validated before anything starts.

Every error names the file, the key and the problem in one line, e.g.
`patches/duet.toml: [engine] budget_ms must be a number of milliseconds, got "x"`.
Unknown keys are errors too: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import PatchError
from .io.midiparse import MIDI_BACKENDS
from .model.sampling import key_pitch_classes

CONTROL_TARGETS = {"temperature": (0.05, 5.0), "top_p": (0.05, 1.0), "answer_notes": (1, 256),
                   "phrase_end_ms": (20, 10_000)}
SYNTHS = ("none", "builtin", "fluidsynth")


@dataclass(frozen=True)
class EngineSection:
    mode: str = "continuation"
    budget_ms: float = 3.0
    tempo_bpm: float = 100.0
    seed: int = 0


@dataclass(frozen=True)
class ModelSection:
    name: str = "bach-folk-lstm.int8"
    temperature: float | None = None  # None: the model card's default
    top_p: float | None = None
    key: str | None = None
    lowest: int = 0
    highest: int = 127
    max_polyphony: int | None = None
    fallback: str = "markov"  # what answers a note when the model cannot in time: "markov" or "none"


@dataclass(frozen=True)
class ContinuationSection:
    phrase_end_ms: float | None = None
    phrase_end_beats: float = 1.5
    answer_notes: int = 24
    answer_beats: float = 12.0
    lookahead_ms: float = 50.0
    channel: int = 1  # 1-16 as musicians count
    follow_velocity: bool = True


@dataclass(frozen=True)
class MidiSection:
    enabled: bool = True
    backend: str | None = None  # None: the platform's default
    input: str | None = None  # exact name or substring; None opens a virtual port "realtime:in"
    output: str | None = None
    client_name: str = "realtime"
    latency_ms: float = 0.0  # the output device's own latency: notes are sent this much earlier (jack)


@dataclass(frozen=True)
class OscSection:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9000
    allow: tuple[str, ...] = ("127.0.0.1",)
    out_host: str | None = None  # send the note stream as OSC too, e.g. to SuperCollider or Pd
    out_port: int = 57120


@dataclass(frozen=True)
class SynthSection:
    kind: str = "none"
    soundfont: str | None = None
    gain: float = 0.7


@dataclass(frozen=True)
class LinkSection:
    enabled: bool = False  # join an Ableton Link session: tempo, beat phase, start/stop (realtime/link.py)
    quantum: float = 4.0  # beats per phrase on the shared grid
    start_stop: bool = True  # follow peers' start/stop when they enable it


@dataclass(frozen=True)
class ControlMapping:
    source: str  # "cc:<number>" (any channel) or "osc:<name>"
    target: str
    min: float
    max: float
    curve: str = "linear"

    def value(self, normalized: float) -> float:
        """Map 0..1 to the target's range along the curve."""
        x = min(1.0, max(0.0, normalized))
        if self.curve == "exp" and self.min > 0:
            return self.min * (self.max / self.min) ** x
        return self.min + (self.max - self.min) * x


GAME_CONTROLS = {"density": (0.0, 8.0), "polyphony": (1.0, 4.0), "register": (24.0, 96.0),
                 "dynamics": (1.0, 127.0), "temperature": (0.05, 5.0), "gain": (0.0, 2.0)}
GAME_CURVES = ("linear", "exp", "smooth")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True)
class GameParam:
    """A game parameter (`/game/param NAME VALUE`): accepted range and the value before any message."""

    name: str
    initial: float = 0.0
    min: float = 0.0
    max: float = 1.0


@dataclass(frozen=True)
class GameVoice:
    """One layer: its MIDI channel (and OSC prefix), pitch limits, and the controls it plays with."""

    name: str
    channel: int = 1  # 1-16 as musicians count
    osc_prefix: str | None = None  # notes also go out as OSC under this prefix, e.g. "/melody"
    lowest: int = 0
    highest: int = 127
    max_polyphony: int | None = None
    register: float = 64.0
    density: float = 2.0
    polyphony: float = 1.0
    dynamics: float = 80.0
    temperature: float | None = None  # None: the model's
    gain: float = 1.0  # velocity multiplier
    enter_param: str | None = None  # play only while this parameter is at least enter_at
    enter_at: float = 0.0


@dataclass(frozen=True)
class GameState:
    """A section (`/game/state NAME`): key, the layers that play, and optionally its tempo."""

    name: str
    key: str = "C major"
    voices: tuple[str, ...] = ()
    tempo_bpm: float | None = None


@dataclass(frozen=True)
class GameEvent:
    """A stinger (`/game/event NAME`): a motif in semitones above the section's tonic, on the next beat."""

    name: str
    notes: tuple[int, ...] = (0, 7, 12)
    base: int = 72  # the tonic nearest this pitch is semitone 0
    step_beats: float = 0.25
    duration_beats: float = 0.25
    velocity: int = 110
    channel: int = 16


@dataclass(frozen=True)
class GameMapping:
    """Game parameter -> a voice control, through a curve, over a range."""

    param: str
    control: str
    min: float
    max: float
    curve: str = "linear"
    voices: tuple[str, ...] = ()  # empty: every voice

    def value(self, normalized: float) -> float:
        x = min(1.0, max(0.0, normalized))
        if self.curve == "exp" and self.min > 0 and self.max > 0:
            return self.min * (self.max / self.min) ** x
        if self.curve == "smooth":
            x = x * x * (3.0 - 2.0 * x)
        return self.min + (self.max - self.min) * x


@dataclass(frozen=True)
class GameSection:
    beats_per_bar: int = 4
    smoothing_ms: float = 300.0  # time constant of /game/param smoothing (63% of a step after this long)
    lookahead_ms: float = 60.0
    initial_state: str | None = None  # None: the first state
    autostart: bool = True  # start the transport at once (else wait for /transport/start or MIDI Start)
    midi_clock_out: bool = False
    midi_clock_in: bool = False
    params: tuple[GameParam, ...] = ()
    voices: tuple[GameVoice, ...] = ()
    states: tuple[GameState, ...] = ()
    events: tuple[GameEvent, ...] = ()
    maps: tuple[GameMapping, ...] = ()


@dataclass(frozen=True)
class Patch:
    path: str
    engine: EngineSection = field(default_factory=EngineSection)
    model: ModelSection = field(default_factory=ModelSection)
    continuation: ContinuationSection = field(default_factory=ContinuationSection)
    midi: MidiSection = field(default_factory=MidiSection)
    osc: OscSection = field(default_factory=OscSection)
    synth: SynthSection = field(default_factory=SynthSection)
    link: LinkSection = field(default_factory=LinkSection)
    controls: tuple[ControlMapping, ...] = ()
    game: GameSection | None = None


SECTIONS = {"engine": EngineSection, "model": ModelSection, "continuation": ContinuationSection,
            "midi": MidiSection, "osc": OscSection, "synth": SynthSection,
            "link": LinkSection}


def _type_name(kind: Any) -> str:
    return {float: "a number", int: "a whole number", str: "a string", bool: "true or false"}.get(kind, str(kind))


def _coerce(where: str, key: str, value: Any, annotation: str) -> Any:
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


def _section(path: str, name: str, cls: type, table: Any) -> Any:
    where = f"{path}: [{name}]"
    if not isinstance(table, dict):
        raise PatchError(f"{where} must be a table")
    known = {f.name: f for f in fields(cls)}
    for key in table:
        if key not in known:
            raise PatchError(f"{where} unknown key {key!r}; known keys: {', '.join(known)}")
    return cls(**{key: _coerce(where, key, value, str(known[key].type)) for key, value in table.items()})


def _check(path: str, patch: Patch) -> None:
    def fail(section: str, key: str, problem: str) -> None:
        raise PatchError(f"{path}: [{section}] {key} {problem}")

    e, m, c = patch.engine, patch.model, patch.continuation
    if e.mode not in ("continuation", "game"):
        fail("engine", "mode", f"must be \"continuation\" or \"game\", got {e.mode!r}")
    if e.mode == "game" and patch.game is None:
        fail("engine", "mode", "is \"game\" but the patch has no [game] section")
    if not 0.5 <= e.budget_ms <= 500:
        fail("engine", "budget_ms", f"must be between 0.5 and 500 milliseconds, got {e.budget_ms}")
    if not 20 <= e.tempo_bpm <= 400:
        fail("engine", "tempo_bpm", f"must be between 20 and 400, got {e.tempo_bpm}")
    if m.temperature is not None and not 0.05 <= m.temperature <= 5:
        fail("model", "temperature", f"must be between 0.05 and 5, got {m.temperature}")
    if m.top_p is not None and not 0 < m.top_p <= 1:
        fail("model", "top_p", f"must be in (0, 1], got {m.top_p}")
    if m.key is not None:
        try:
            key_pitch_classes(m.key)
        except ValueError as err:
            fail("model", "key", str(err))
    if not 0 <= m.lowest <= m.highest <= 127:
        fail("model", "lowest/highest", f"must satisfy 0 <= lowest <= highest <= 127, got {m.lowest}, {m.highest}")
    if m.max_polyphony is not None and not 1 <= m.max_polyphony <= 16:
        fail("model", "max_polyphony", f"must be between 1 and 16, got {m.max_polyphony}")
    if m.fallback not in ("markov", "none"):
        fail("model", "fallback", f"must be \"markov\" or \"none\", got {m.fallback!r}")
    if c.phrase_end_ms is not None and not 20 <= c.phrase_end_ms <= 10_000:
        fail("continuation", "phrase_end_ms", f"must be between 20 and 10000, got {c.phrase_end_ms}")
    if not 0.05 <= c.phrase_end_beats <= 32:
        fail("continuation", "phrase_end_beats", f"must be between 0.05 and 32, got {c.phrase_end_beats}")
    if not 1 <= c.answer_notes <= 256:
        fail("continuation", "answer_notes", f"must be between 1 and 256, got {c.answer_notes}")
    if not 0.25 <= c.answer_beats <= 256:
        fail("continuation", "answer_beats", f"must be between 0.25 and 256, got {c.answer_beats}")
    if not 0 <= c.lookahead_ms <= 2000:
        fail("continuation", "lookahead_ms", f"must be between 0 and 2000, got {c.lookahead_ms}")
    if not 1 <= c.channel <= 16:
        fail("continuation", "channel", f"must be a MIDI channel 1-16, got {c.channel}")
    if patch.midi.backend is not None and patch.midi.backend not in MIDI_BACKENDS:
        fail("midi", "backend", f"must be one of {', '.join(MIDI_BACKENDS)}, got {patch.midi.backend!r}")
    if not 0 <= patch.midi.latency_ms <= 500:
        fail("midi", "latency_ms", f"must be between 0 and 500 milliseconds, got {patch.midi.latency_ms}")
    for key, port in (("port", patch.osc.port), ("out_port", patch.osc.out_port)):
        if not 0 <= port <= 65535:
            fail("osc", key, f"must be a UDP port 0-65535, got {port}")
    if patch.synth.kind not in SYNTHS:
        fail("synth", "kind", f"must be one of {', '.join(SYNTHS)}, got {patch.synth.kind!r}")
    if not 1 <= patch.link.quantum <= 64:
        fail("link", "quantum", f"must be between 1 and 64 beats, got {patch.link.quantum}")
    if patch.link.enabled and e.mode != "game":
        fail("link", "enabled", "needs engine.mode = \"game\" (the mode with a beat grid)")
    if not 0 < patch.synth.gain <= 5:
        fail("synth", "gain", f"must be between 0 and 5, got {patch.synth.gain}")


def _controls(path: str, entries: Any) -> tuple[ControlMapping, ...]:
    if not isinstance(entries, list):
        raise PatchError(f"{path}: [[controls]] must be an array of tables")
    out = []
    for i, entry in enumerate(entries):
        where = f"{path}: [[controls]] #{i + 1}"
        if not isinstance(entry, dict):
            raise PatchError(f"{where} must be a table")
        missing = [k for k in ("source", "target") if k not in entry]
        if missing:
            raise PatchError(f"{where} needs {' and '.join(missing)}")
        source, target = entry["source"], entry["target"]
        if not (isinstance(source, str) and (source.startswith("osc:") and len(source) > 4
                                             or source.startswith("cc:") and source[3:].isdigit() and int(source[3:]) < 128)):
            raise PatchError(f"{where} source must be \"cc:<0-127>\" or \"osc:<name>\", got {source!r}")
        if target not in CONTROL_TARGETS:
            raise PatchError(f"{where} target must be one of {', '.join(CONTROL_TARGETS)}, got {target!r}")
        low, high = CONTROL_TARGETS[target]
        mapping = _section(path, f"[controls] #{i + 1}", ControlMapping,
                           {"min": low, "max": high} | entry)
        if not (low <= mapping.min <= high and low <= mapping.max <= high):
            raise PatchError(f"{where} min and max for {target} must lie in {low}..{high}")
        if mapping.curve not in ("linear", "exp"):
            raise PatchError(f"{where} curve must be \"linear\" or \"exp\", got {mapping.curve!r}")
        out.append(mapping)
    return tuple(out)


def _named_tables(path: str, where: str, cls: type, table: Any) -> tuple:
    """[game.voices.NAME] style tables -> one dataclass per NAME, in file order."""
    if not isinstance(table, dict):
        raise PatchError(f"{path}: [{where}] must be a table of named tables")
    out = []
    for name, entry in table.items():
        if not (0 < len(name) <= 64 and set(name) <= _NAME_CHARS):
            raise PatchError(f"{path}: [{where}.{name}] names must be 1-64 letters, digits, '_', '.' or '-'")
        if cls is GameParam and isinstance(entry, (int, float)) and not isinstance(entry, bool):
            entry = {"initial": entry}  # intensity = 0.2 is short for { initial = 0.2 }
        if not isinstance(entry, dict) or "name" in entry:
            raise PatchError(f"{path}: [{where}.{name}] must be a table (without a 'name' key)")
        out.append(_section(path, f"{where}.{name}", cls, entry | {"name": name}))
    return tuple(out)


def _game(path: str, raw: Any) -> GameSection:
    """[game]: parameters, voices, states, events and maps, every cross-reference checked."""
    if not isinstance(raw, dict):
        raise PatchError(f"{path}: [game] must be a table")
    nested = {"params": GameParam, "voices": GameVoice, "states": GameState, "events": GameEvent}
    scalars = {k: v for k, v in raw.items() if k not in nested and k != "map"}
    plain = _section(path, "game", GameSection, scalars | {})
    parts = {key: _named_tables(path, f"game.{key}", cls, raw.get(key, {})) for key, cls in nested.items()}
    maps_raw = raw.get("map", [])
    if not isinstance(maps_raw, list):
        raise PatchError(f"{path}: [[game.map]] must be an array of tables")
    maps = []
    for i, entry in enumerate(maps_raw):
        where = f"game.map #{i + 1}"
        if not isinstance(entry, dict) or not {"param", "control"} <= set(entry):
            raise PatchError(f"{path}: [{where}] must be a table with at least param and control")
        low, high = GAME_CONTROLS.get(entry["control"], (0.0, 1.0))
        maps.append(_section(path, where, GameMapping, {"min": low, "max": high} | entry))
    maps = tuple(maps)
    game = replace(plain, maps=maps, **parts)

    def fail(where: str, problem: str) -> None:
        raise PatchError(f"{path}: [{where}] {problem}")

    if not 1 <= game.beats_per_bar <= 16:
        fail("game", f"beats_per_bar must be 1-16, got {game.beats_per_bar}")
    if not 0 <= game.smoothing_ms <= 60_000:
        fail("game", f"smoothing_ms must be 0-60000, got {game.smoothing_ms}")
    if not 5 <= game.lookahead_ms <= 1000:
        fail("game", f"lookahead_ms must be 5-1000, got {game.lookahead_ms}")
    if not game.voices or not game.states:
        fail("game", "needs at least one [game.voices.NAME] and one [game.states.NAME]")
    params, voices = {p.name for p in game.params}, {v.name for v in game.voices}
    for p in game.params:
        if not p.min < p.max or not p.min <= p.initial <= p.max:
            fail(f"game.params.{p.name}", f"needs min < max and initial within them, got {p.min}, {p.max}, {p.initial}")
    for v in game.voices:
        where = f"game.voices.{v.name}"
        if not 1 <= v.channel <= 16:
            fail(where, f"channel must be a MIDI channel 1-16, got {v.channel}")
        if not 0 <= v.lowest <= v.highest <= 127:
            fail(where, f"lowest/highest must satisfy 0 <= lowest <= highest <= 127, got {v.lowest}, {v.highest}")
        if v.max_polyphony is not None and not 1 <= v.max_polyphony <= 16:
            fail(where, f"max_polyphony must be 1-16, got {v.max_polyphony}")
        for control in ("register", "density", "polyphony", "dynamics", "gain"):
            low, high = GAME_CONTROLS[control]
            if not low <= getattr(v, control) <= high:
                fail(where, f"{control} must be {low}-{high}, got {getattr(v, control)}")
        if v.temperature is not None and not 0.05 <= v.temperature <= 5:
            fail(where, f"temperature must be 0.05-5, got {v.temperature}")
        if v.enter_param is not None and v.enter_param not in params:
            fail(where, f"enter_param {v.enter_param!r} is not a [game.params] name ({', '.join(params) or 'none'})")
        if v.osc_prefix is not None and (not v.osc_prefix.startswith("/") or v.osc_prefix.endswith("/")):
            fail(where, f"osc_prefix must look like '/melody', got {v.osc_prefix!r}")
    for st in game.states:
        where = f"game.states.{st.name}"
        try:
            key_pitch_classes(st.key)
        except ValueError as err:
            fail(where, f"key: {err}")
        unknown = [v for v in st.voices if v not in voices]
        if unknown:
            fail(where, f"voices {unknown} are not [game.voices] names ({', '.join(voices)})")
        if st.tempo_bpm is not None and not 20 <= st.tempo_bpm <= 400:
            fail(where, f"tempo_bpm must be 20-400, got {st.tempo_bpm}")
    if game.initial_state is not None and game.initial_state not in {st.name for st in game.states}:
        fail("game", f"initial_state {game.initial_state!r} is not a [game.states] name")
    for ev in game.events:
        where = f"game.events.{ev.name}"
        if not ev.notes or not all(-48 <= n <= 48 for n in ev.notes) or not 0 <= ev.base <= 127:
            fail(where, "notes must be 1 or more semitone offsets within -48..48, and base a MIDI pitch")
        if not (0.01 <= ev.step_beats <= 16 and 0.01 <= ev.duration_beats <= 16):
            fail(where, "step_beats and duration_beats must be 0.01-16")
        if not 1 <= ev.velocity <= 127 or not 1 <= ev.channel <= 16:
            fail(where, f"velocity must be 1-127 and channel 1-16, got {ev.velocity}, {ev.channel}")
    for i, m in enumerate(game.maps):
        where = f"game.map #{i + 1}"
        if m.param not in params:
            fail(where, f"param {m.param!r} is not a [game.params] name ({', '.join(params) or 'none'})")
        if m.control not in GAME_CONTROLS:
            fail(where, f"control must be one of {', '.join(GAME_CONTROLS)}, got {m.control!r}")
        low, high = GAME_CONTROLS[m.control]
        if not (low <= m.min <= high and low <= m.max <= high):
            fail(where, f"min and max for {m.control} must lie in {low}..{high}")
        if m.curve not in GAME_CURVES:
            fail(where, f"curve must be one of {', '.join(GAME_CURVES)}, got {m.curve!r}")
        unknown = [v for v in m.voices if v not in voices]
        if unknown:
            fail(where, f"voices {unknown} are not [game.voices] names")
    return game


def load_patch(path: str | Path) -> Patch:
    """Read and validate a patch file; raises PatchError with a one-line message."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PatchError(f"{path}: no such patch file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PatchError(f"{path}: cannot read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise PatchError(f"{path}: TOML syntax error: {err}") from None
    return parse_patch(raw, str(path))


def parse_patch(raw: dict, path: str = "<patch>") -> Patch:
    for name in raw:
        if name not in SECTIONS and name not in ("controls", "game"):
            raise PatchError(f"{path}: unknown section [{name}]; known: {', '.join([*SECTIONS, 'controls', 'game'])}")
    sections = {name: _section(path, name, cls, raw[name]) for name, cls in SECTIONS.items() if name in raw}
    game = _game(path, raw["game"]) if "game" in raw else None
    patch = Patch(path=path, controls=_controls(path, raw.get("controls", [])), game=game, **sections)
    _check(path, patch)
    return patch
