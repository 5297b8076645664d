"""Patches: TOML files that wire inputs -> model -> outputs, validated before anything starts.

Every error names the file, the key and the problem in one line, e.g.
`patches/duet.toml: [engine] budget_ms must be a number of milliseconds, got "x"`.
Unknown keys are errors too: a typo must not silently fall back to a default. The dataclasses
here are the file's schema (1-based channels, optional keys); `compile_patch` turns a patch into
the engine's own settings (realtime/settings.py), which is all the engine ever sees. The checks
live in realtime/patchcheck.py, the shared ranges and defaults in `settings.RANGES`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import PatchError
from .gamecheck import check_game
from .patchcheck import check_patch, control_source, control_target, named_tables, read_toml, section
from .shapepatch import answer_shape
from .settings import (GAME_CONTROLS, RANGES, ContinuationSettings, ControlMapping, EngineSettings, GameSettings,
                       ListenSettings, MapSettings, ModelSettings, ParamSettings, SectionSettings, StingerSettings,
                       VoiceSettings)
from .stagepatch import AccompanySection, HarmonizeSection, LeadSheetSection, TradeSection
from .stagesettings import AccompanySettings, CriticSettings, HarmonizeSettings, LeadSheetSettings, TradeSettings

_CONTINUATION = ContinuationSettings()  # the engine's defaults are the file's
_LISTEN = ListenSettings()


@dataclass(frozen=True)
class EngineSection:
    mode: str = "continuation"
    budget_ms: float = _CONTINUATION.budget_ms
    tempo_bpm: float = RANGES["tempo_bpm"].default
    seed: int = 0
    modes: tuple[str, ...] = ()  # the modes switchable live (/mode, program change n = the n-th); () = mode alone
    beats_per_bar: int = 4  # a live switch waits for the next bar line of the player's beat
    mood: str | None = None  # a mood of the table (realtime/moods.py) the duet answers in; None: none
    moods: str | None = None  # the mood table, relative to the patch's folder; None: patches/moods.toml
    style: str | None = None  # the model's style (a `style_NAME` its card lists); None: not said


@dataclass(frozen=True)
class ModelSection:
    name: str = "stage-lstm.int8"
    temperature: float | None = None  # None: the model card's default
    top_p: float | None = None
    key: str | None = None
    lowest: int = 0
    highest: int = 127
    max_polyphony: int | None = None
    fallback: str = "markov"  # what answers a note when the model cannot in time: "markov" or "none"
    style_guidance: float = RANGES["style_guidance"].default  # a named style pushed this much (0: the model alone)


@dataclass(frozen=True)
class ContinuationSection:
    phrase_end_ms: float | None = None
    phrase_end_beats: float = _CONTINUATION.phrase_end_beats
    answer_notes: int = _CONTINUATION.answer_notes
    answer_beats: float = _CONTINUATION.answer_beats
    lookahead_ms: float = _CONTINUATION.lookahead_ms
    channel: int = 1  # 1-16 as musicians count
    follow_velocity: bool = _CONTINUATION.follow_velocity
    follow_tempo: bool = _CONTINUATION.follow_tempo  # hear and answer at the player's tempo once it is tracked
    follow_register: bool = _CONTINUATION.follow_register  # a model with controls hears the phrase's mean pitch
    follow_density: bool = _CONTINUATION.follow_density  # ... its onsets per beat
    follow_dynamics: bool = _CONTINUATION.follow_dynamics  # ... its mean velocity
    follow_key: bool = _CONTINUATION.follow_key  # ... its pitch classes
    fresh_phrases: bool = _CONTINUATION.fresh_phrases  # the model hears each phrase on its own (its register, key)
    register: float | None = None  # a fixed register control (MIDI pitch), instead of the phrase's
    blend: float = _CONTINUATION.blend  # share of the memory of the player in each pitch choice, 0-1
    key_pull: float = _CONTINUATION.key_pull  # nats off each pitch outside the key heard in the phrase
    memory: str | None = None  # the memory's file, relative to the patch's folder; None: not kept between runs
    rhythm: str | None = None  # the answers' rhythm: a .mid (relative to the patch), "x.x.xx.x" or "1 0.5 0.5"
    rhythm_tap_note: int | None = None  # taps on this note set the rhythm live; None: no taps
    rhythm_tap_channel: int = 10  # 1-16: the taps' channel (10: drum pads)


@dataclass(frozen=True)
class MidiSection:
    enabled: bool = True
    backend: str | None = None  # None: the platform's default
    input: str | None = None  # exact name or substring; None opens a virtual port (JACK: "realtime-in:in")
    output: str | None = None  # None: a virtual port (JACK: "realtime-out:out")
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
class ListenSection:
    """[listen]: how the player's chord, key and tempo are heard (ranges: settings.LISTEN_RANGES)."""

    zone: str = _LISTEN.zone  # "all": every note makes the chord; "left": the notes below split_pitch
    split_pitch: int = _LISTEN.split_pitch
    chord_release_ms: float = _LISTEN.chord_release_ms
    key_decay_s: float = _LISTEN.key_decay_s
    key_margin: float = _LISTEN.key_margin
    tempo_source: str = _LISTEN.tempo_source  # "playing", or "midi_clock": an incoming MIDI clock
    tempo_memory_beats: float = _LISTEN.tempo_memory_beats
    dynamics_decay_s: float = _LISTEN.dynamics_decay_s
    osc_interval_ms: float = _LISTEN.osc_interval_ms


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
    register: float = RANGES["register"].default
    density: float = RANGES["density"].default
    polyphony: float = RANGES["polyphony"].default
    dynamics: float = RANGES["dynamics"].default
    temperature: float | None = None  # None: the model's
    gain: float = RANGES["gain"].default  # velocity multiplier
    enter_param: str | None = None  # play only while this parameter is at least enter_at
    enter_at: float = 0.0
    role: str | None = None  # what the model is told the voice plays; None: from its polyphony and register


@dataclass(frozen=True)
class GameState:
    """A section (`/game/state NAME`): key, the layers that play, and optionally its tempo."""

    name: str
    key: str = "C major"
    voices: tuple[str, ...] = ()
    tempo_bpm: float | None = None
    style: str | None = None  # the model's style while this state plays; None: the session's ([engine] style, /style)


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
    """Game parameter -> a voice control, through a curve, over a range (default: the control's whole range)."""

    param: str
    control: str
    min: float
    max: float
    curve: str = "linear"
    voices: tuple[str, ...] = ()  # empty: every voice


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
    listen: ListenSection = field(default_factory=ListenSection)
    harmonize: HarmonizeSection = field(default_factory=HarmonizeSection)
    critic: CriticSettings = field(default_factory=CriticSettings)  # [critic]: the file's keys are the engine's
    accompany: AccompanySection = field(default_factory=AccompanySection)
    trade: TradeSection = field(default_factory=TradeSection)
    leadsheet: LeadSheetSection = field(default_factory=LeadSheetSection)
    controls: tuple[ControlMapping, ...] = ()
    game: GameSection | None = None


SECTIONS = {"engine": EngineSection, "model": ModelSection, "continuation": ContinuationSection,
            "midi": MidiSection, "osc": OscSection, "synth": SynthSection, "link": LinkSection,
            "listen": ListenSection, "harmonize": HarmonizeSection, "accompany": AccompanySection,
            "critic": CriticSettings, "trade": TradeSection, "leadsheet": LeadSheetSection}


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
        control_source(where, entry["source"])
        low, high = control_target(where, entry["target"])
        mapping = section(path, f"[controls] #{i + 1}", ControlMapping, {"min": low, "max": high} | entry)
        if not (low <= mapping.min <= high and low <= mapping.max <= high):
            raise PatchError(f"{where} min and max for {mapping.target} must lie in {low}..{high}")
        if mapping.curve not in ("linear", "exp"):
            raise PatchError(f"{where} curve must be \"linear\" or \"exp\", got {mapping.curve!r}")
        out.append(mapping)
    return tuple(out)


def _game(path: str, raw: Any) -> GameSection:
    """[game]: parameters, voices, states, events and maps, every cross-reference checked."""
    if not isinstance(raw, dict):
        raise PatchError(f"{path}: [game] must be a table")
    nested = {"params": GameParam, "voices": GameVoice, "states": GameState, "events": GameEvent}
    scalars = {k: v for k, v in raw.items() if k not in nested and k != "map"}
    plain = section(path, "game", GameSection, scalars)
    parts = {key: named_tables(path, f"game.{key}", cls, raw.get(key, {}), "initial" if key == "params" else None)
             for key, cls in nested.items()}
    maps_raw = raw.get("map", [])
    if not isinstance(maps_raw, list):
        raise PatchError(f"{path}: [[game.map]] must be an array of tables")
    maps = []
    for i, entry in enumerate(maps_raw):
        where = f"game.map #{i + 1}"
        if not isinstance(entry, dict) or not {"param", "control"} <= set(entry):
            raise PatchError(f"{path}: [{where}] must be a table with at least param and control")
        whole = GAME_CONTROLS.get(entry["control"])
        low, high = (whole.low, whole.high) if whole else (0.0, 1.0)
        maps.append(section(path, where, GameMapping, {"min": low, "max": high} | entry))
    game = replace(plain, maps=tuple(maps), **parts)
    check_game(path, game)
    return game


def load_patch(path: str | Path) -> Patch:
    """Read and validate a patch file; raises PatchError with a one-line message."""
    path = Path(path)
    return parse_patch(read_toml(path, "patch file"), str(path))


def parse_patch(raw: dict, path: str = "<patch>") -> Patch:
    for name in raw:
        if name not in SECTIONS and name not in ("controls", "game"):
            raise PatchError(f"{path}: unknown section [{name}]; known: {', '.join([*SECTIONS, 'controls', 'game'])}")
    sections = {name: section(path, name, cls, raw[name]) for name, cls in SECTIONS.items() if name in raw}
    game = _game(path, raw["game"]) if "game" in raw else None
    patch = Patch(path=path, controls=_controls(path, raw.get("controls", [])), game=game, **sections)
    check_patch(path, patch)
    return patch


def _compile_game(game: GameSection) -> GameSettings:
    """The game's sections in the engine's terms: 0-based channels, the initial state named."""
    return GameSettings(
        beats_per_bar=game.beats_per_bar, smoothing_ms=game.smoothing_ms, lookahead_ms=game.lookahead_ms,
        initial_state=game.initial_state or game.states[0].name, autostart=game.autostart,
        midi_clock_out=game.midi_clock_out, midi_clock_in=game.midi_clock_in,
        params=tuple(ParamSettings(**asdict(p)) for p in game.params),
        voices=tuple(VoiceSettings(**asdict(v) | {"channel": v.channel - 1}) for v in game.voices),
        states=tuple(SectionSettings(**asdict(s)) for s in game.states),
        events=tuple(StingerSettings(**asdict(e) | {"channel": e.channel - 1}) for e in game.events),
        maps=tuple(MapSettings(**asdict(m)) for m in game.maps))


def compile_patch(patch: Patch) -> EngineSettings:
    """A validated patch -> the settings the engine and its modes run with."""
    e, m, c, a = patch.engine, patch.model, patch.continuation, patch.accompany
    continuation = ContinuationSettings(
        tempo_bpm=e.tempo_bpm, phrase_end_ms=c.phrase_end_ms, phrase_end_beats=c.phrase_end_beats,
        answer_notes=c.answer_notes, answer_beats=c.answer_beats, lookahead_ms=c.lookahead_ms,
        budget_ms=e.budget_ms, channel=c.channel - 1, follow_velocity=c.follow_velocity, follow_tempo=c.follow_tempo,
        follow_register=c.follow_register, follow_density=c.follow_density, follow_dynamics=c.follow_dynamics,
        follow_key=c.follow_key, fresh_phrases=c.fresh_phrases, register=c.register, blend=c.blend, style=e.style,
        key_pull=c.key_pull,
        memory_path=str(Path(patch.path).parent / Path(c.memory).expanduser()) if c.memory else None,
        **answer_shape(patch))
    model = ModelSettings(name=m.name, temperature=m.temperature, top_p=m.top_p, key=m.key, lowest=m.lowest,
                          highest=m.highest, max_polyphony=m.max_polyphony, fallback=m.fallback == "markov",
                          style_guidance=m.style_guidance)
    return EngineSettings(mode=e.mode, seed=e.seed, budget_ms=e.budget_ms, tempo_bpm=e.tempo_bpm, model=model,
                          modes=e.modes or (e.mode,), beats_per_bar=e.beats_per_bar, style=e.style,
                          continuation=continuation, controls=patch.controls,
                          game=_compile_game(patch.game) if patch.game is not None else None,
                          listen=ListenSettings(**asdict(patch.listen)),
                          harmonize=HarmonizeSettings(**asdict(patch.harmonize) | {"channel": patch.harmonize.channel - 1}),
                          critic=patch.critic,
                          accompany=AccompanySettings(**asdict(a) | {"bass_channel": a.bass_channel - 1,
                                                                     "chord_channel": a.chord_channel - 1}),
                          trade=TradeSettings(**asdict(patch.trade) | {"channel": patch.trade.channel - 1}),
                          leadsheet=_leadsheet(patch.leadsheet, str(Path(patch.path).parent)))


def _leadsheet(section: LeadSheetSection, folder: str) -> LeadSheetSettings:
    return LeadSheetSettings(**asdict(section) | {key: getattr(section, key) - 1 for key in
                                                  ("bass_channel", "chord_channel", "melody_channel")} |
                             {"folder": folder})
