"""Patches: TOML files that wire inputs -> model -> outputs, validated before anything starts.

Every error names the file, the key and the problem in one line, e.g.
`patches/duet.toml: [engine] budget_ms must be a number of milliseconds, got "x"`.
Unknown keys are errors too: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import PatchError
from .model.sampling import key_pitch_classes

MIDI_BACKENDS = ("jack", "alsa", "coremidi", "winmm")
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


@dataclass(frozen=True)
class Patch:
    path: str
    engine: EngineSection = field(default_factory=EngineSection)
    model: ModelSection = field(default_factory=ModelSection)
    continuation: ContinuationSection = field(default_factory=ContinuationSection)
    midi: MidiSection = field(default_factory=MidiSection)
    osc: OscSection = field(default_factory=OscSection)
    synth: SynthSection = field(default_factory=SynthSection)
    controls: tuple[ControlMapping, ...] = ()


SECTIONS = {"engine": EngineSection, "model": ModelSection, "continuation": ContinuationSection,
            "midi": MidiSection, "osc": OscSection, "synth": SynthSection}


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
    if e.mode != "continuation":
        fail("engine", "mode", f"must be \"continuation\", got {e.mode!r}")
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
    for key, port in (("port", patch.osc.port), ("out_port", patch.osc.out_port)):
        if not 0 <= port <= 65535:
            fail("osc", key, f"must be a UDP port 0-65535, got {port}")
    if patch.synth.kind not in SYNTHS:
        fail("synth", "kind", f"must be one of {', '.join(SYNTHS)}, got {patch.synth.kind!r}")
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
        if name not in SECTIONS and name != "controls":
            raise PatchError(f"{path}: unknown section [{name}]; known: {', '.join([*SECTIONS, 'controls'])}")
    sections = {name: _section(path, name, cls, raw[name]) for name, cls in SECTIONS.items() if name in raw}
    patch = Patch(path=path, controls=_controls(path, raw.get("controls", [])), **sections)
    _check(path, patch)
    return patch
