"""What the engine runs with: one table of ranges and defaults, and the settings a patch compiles into.

The patch file is the user's language (1-based channels, optional keys, section names); these are
the engine's own: 0-based channels, every default filled in, nothing that needs the file's schema.
`realtime/patch.py` validates a file against `RANGES` and compiles it into `EngineSettings`;
nothing under `realtime/engine/` imports the patch. The same table gives the OSC address table its
tempo range and `/learn` targets, the model's control specs their ranges (model/controls.py), and
the README its "Patch values" table (tests/test_settings.py keeps them in step).
"""

from __future__ import annotations

from dataclasses import dataclass

from .ranges import Range
from .stagesettings import AccompanySettings, CriticSettings, HarmonizeSettings, LeadSheetSettings, TradeSettings

RANGES: dict[str, Range] = {r.name: r for r in (
    Range("tempo_bpm", 20, 400, 100.0, "BPM", "the tempo",
          "[engine], [game.states.NAME] (default: unchanged), /transport/tempo, an incoming MIDI clock"),
    Range("temperature", 0.05, 5.0, 1.0, "", "sampling temperature; the patch's default is the model card's, "
          "else this", "[model], [game.voices.NAME] (default: [model]'s), [[controls]], [[game.map]]"),
    Range("top_p", 0.05, 1.0, 1.0, "", "nucleus sampling: the likeliest notes up to this share; the patch's "
          "default is the model card's, else this", "[model], [[controls]]"),
    Range("answer_notes", 1, 256, 24, "notes", "the longest answer", "[continuation], [[controls]]"),
    Range("phrase_end_ms", 20, 10_000, None, "ms", "silence that ends the player's phrase; default: "
          "phrase_end_beats at the tempo", "[continuation], [[controls]]"),
    Range("blend", 0.0, 1.0, 0.0, "share", "how much of the duet's pitch choice comes from its Markov memory of "
          "the player (0: the model alone)", "[continuation], [[controls]]"),
    Range("style_guidance", 0.0, 8.0, 0.0, "", "how much a named style is pushed beyond what the model alone "
          "makes of it (styled + g * (styled - unstyled) logits; 0: the model alone; 2 makes styles audible at "
          "~15 us a note); only a model with styles", "[model], --style-guidance"),
    Range("key_pull", 0.0, 8.0, 2.0, "nats", "how strongly the duet's answer keeps to the key heard in the phrase "
          "(0: the model alone; a chromatic note stays possible)", "[continuation], [[controls]]"),
    Range("density", 0.0, 8.0, 2.0, "onsets per beat", "distinct note onsets per beat",
          "[game.voices.NAME], [[game.map]]"),
    Range("polyphony", 1.0, 4.0, 1.0, "notes per onset", "notes starting together (chord size)",
          "[game.voices.NAME], [[game.map]]"),
    Range("register", 24.0, 96.0, 64.0, "MIDI pitch", "mean pitch", "[game.voices.NAME], [[game.map]], [continuation]"),
    Range("dynamics", 1.0, 127.0, 80.0, "MIDI velocity", "mean velocity", "[game.voices.NAME], [[game.map]]"),
    Range("gain", 0.0, 2.0, 1.0, "x velocity", "a voice's velocity multiplier", "[game.voices.NAME], [[game.map]]"),
)}

# [listen]: what the listener (realtime/listen/) hears with; the README's "Listening" table
LISTEN_RANGES: dict[str, Range] = {r.name: r for r in (
    Range("split_pitch", 0, 127, 60, "MIDI pitch", "with zone = \"left\", only notes below this make the chord",
          "[listen]"),
    Range("chord_release_ms", 0, 5000, 250.0, "ms", "a released note fades from the chord over this long, "
          "while fewer than three pitch classes are held (arpeggios)", "[listen]"),
    Range("key_decay_s", 1, 600, 20.0, "s", "a note's weight in the key estimate falls by e in this long", "[listen]"),
    Range("key_margin", 0, 1, 0.05, "correlation", "how much better another key must fit to replace the current one",
          "[listen]"),
    Range("tempo_memory_beats", 1, 16, 3.0, "beats", "onsets older than two beats count toward the tempo by "
          "exp(-(age - 2) / this)", "[listen]"),
    Range("dynamics_decay_s", 0.1, 60, 2.0, "s", "density and mean velocity forget by e in this long", "[listen]"),
    Range("osc_interval_ms", 10, 5000, 100.0, "ms", "how often /listen/tempo is sent (chord and key: when they "
          "change)", "[listen], with [osc] out_host"),
)}
LISTEN_ZONES = ("all", "left")  # the chord from every note, or from the notes below split_pitch
TEMPO_SOURCES = ("playing", "midi_clock")

# what [[controls]] and /learn may steer live, and what [[game.map]] may steer per voice
CONTROL_TARGETS: dict[str, Range] = {n: RANGES[n] for n in ("temperature", "top_p", "answer_notes", "phrase_end_ms",
                                                             "blend", "key_pull")}
GAME_CONTROLS: dict[str, Range] = {n: RANGES[n] for n in
                                   ("density", "polyphony", "register", "dynamics", "temperature", "gain")}
GAME_CURVES = ("linear", "exp", "smooth")


def sampling(card: dict, temperature: float | None, top_p: float | None) -> tuple[float, float]:
    """Temperature and top-p: the patch's, else the model card's `sampling`, else the table's default."""
    defaults = card.get("sampling", {})
    return (temperature if temperature is not None else defaults.get("temperature", RANGES["temperature"].default),
            top_p if top_p is not None else defaults.get("top_p", RANGES["top_p"].default))


def ranges_table_markdown(ranges: dict[str, Range] | None = None) -> str:
    """The README's "Patch values" table, from RANGES (or its "Listening" table, from LISTEN_RANGES)."""
    lines = ["| value | range | default | unit | meaning | set by |", "| --- | --- | --- | --- | --- | --- |"]
    for r in (RANGES if ranges is None else ranges).values():
        default = "-" if r.default is None else f"{r.default:g}"
        lines.append(f"| `{r.name}` | {r.span()} | {default} | {r.unit or '-'} | {r.doc} | {r.where} |")
    return "\n".join(lines)


def _curve(low: float, high: float, curve: str, normalized: float) -> float:
    """0..1 (clamped) to low..high along a curve: linear, exp (geometric, when both ends are positive), smooth."""
    x = min(1.0, max(0.0, normalized))
    if curve == "exp" and low > 0 and high > 0:
        return low * (high / low) ** x
    if curve == "smooth":
        x = x * x * (3.0 - 2.0 * x)
    return low + (high - low) * x


@dataclass(frozen=True)
class ControlMapping:
    """A controller -> a live control target ([[controls]] in a patch, or a MIDI-learned binding)."""

    source: str  # "cc:<number>" (any channel) or "osc:<name>"
    target: str
    min: float
    max: float
    curve: str = "linear"

    def value(self, normalized: float) -> float:
        """Map 0..1 to the target's range along the curve."""
        return _curve(self.min, self.max, self.curve, normalized)


DUET_MODEL = "stage-lstm.int8"  # what the duet answers with unless told: it hears the phrase's register (README)


@dataclass(frozen=True)
class ContinuationSettings:
    tempo_bpm: float = RANGES["tempo_bpm"].default
    phrase_end_ms: float | None = None  # silence that ends a phrase; if None, phrase_end_beats
    phrase_end_beats: float = 1.5
    answer_notes: int = RANGES["answer_notes"].default
    answer_beats: float = 12.0
    lookahead_ms: float = 50.0  # how far ahead of its deadline each answer note is chosen
    budget_ms: float = 3.0  # less slack than this after scheduling a note: the model is behind
    channel: int = 0
    follow_velocity: bool = True  # answer at the phrase's loudness
    follow_tempo: bool = True  # hear and answer at the player's tempo while the listener is locked on it
    # a model that hears controls (its card lists them) is told these, measured from the phrase it answers
    follow_register: bool = True  # the phrase's mean pitch
    follow_density: bool = True  # its onsets per beat
    follow_dynamics: bool = True  # its mean velocity
    follow_key: bool = True  # its pitch-class shares
    fresh_phrases: bool = False  # each phrase heard from the model's first note, not after every earlier one
    register: float | None = None  # a fixed register control (MIDI pitch) instead of the phrase's
    max_note_ms: float = 30_000.0  # a player's note held longer is taken as ended (its note-off was lost)
    blend: float = RANGES["blend"].default  # share of the player's Markov memory in each pitch choice
    key_pull: float = RANGES["key_pull"].default  # nats off each out-of-key pitch of an answer (the phrase's key)
    memory_path: str | None = None  # where that memory is kept between runs (resolved); None: not kept
    rhythm: object | None = None  # a rhythm.Rhythm the answers follow (onsets, durations); None: the model's own
    rhythm_folder: str | None = None  # where `/rhythm FILE.mid` is looked for (the patch's folder)
    tap_note: int | None = None  # note-ons of this pitch on tap_channel set the pattern (engine/answershape.py)
    tap_channel: int = 9  # 0-based: MIDI channel 10
    mood: object | None = None  # a moods.Mood the answers play in; None: none
    moods: tuple = ()  # every mood of the patch's table, for `/mood NAME`
    style: str | None = None  # the stage model's style ([engine] style); None: not said

    @property
    def ms_per_beat(self) -> float:
        return 60000.0 / self.tempo_bpm

    @property
    def phrase_end_ns(self) -> int:
        return self.phrase_end_ns_at(self.ms_per_beat * 1e6)

    def phrase_end_ns_at(self, ns_per_beat: float) -> int:
        """The phrase-end silence when a beat lasts this long (phrase_end_ms, if set, wins)."""
        return int(self.phrase_end_ms * 1e6) if self.phrase_end_ms is not None else int(self.phrase_end_beats * ns_per_beat)


@dataclass(frozen=True, slots=True)
class ParamSettings:
    """A game parameter: accepted range and its value before any message."""

    name: str
    initial: float
    min: float
    max: float


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """One layer of the game mode; `channel` is 0-15."""

    name: str
    channel: int
    osc_prefix: str | None
    lowest: int
    highest: int
    max_polyphony: int | None
    register: float
    density: float
    polyphony: float
    dynamics: float
    temperature: float | None  # None: the model's
    gain: float
    enter_param: str | None  # plays only while this parameter is at least enter_at
    enter_at: float
    role: str | None = None  # the model's role control (engine/stagecontrols.py voice_role); None: from the settings


@dataclass(frozen=True, slots=True)
class SectionSettings:
    """A game state: its key, the layers that play, and its tempo (None: unchanged)."""

    name: str
    key: str
    voices: tuple[str, ...]
    tempo_bpm: float | None
    style: str | None = None  # the model's style while it plays; None: the session's


@dataclass(frozen=True, slots=True)
class StingerSettings:
    """A game event's motif: semitones above the tonic nearest `base`; `channel` is 0-15."""

    name: str
    notes: tuple[int, ...]
    base: int
    step_beats: float
    duration_beats: float
    velocity: int
    channel: int


@dataclass(frozen=True, slots=True)
class MapSettings:
    """A game parameter -> a voice control, through a curve, over min..max; no voices: every voice."""

    param: str
    control: str
    min: float
    max: float
    curve: str
    voices: tuple[str, ...]

    def value(self, normalized: float) -> float:
        return _curve(self.min, self.max, self.curve, normalized)


@dataclass(frozen=True)
class GameSettings:
    beats_per_bar: int
    smoothing_ms: float  # time constant of parameter smoothing
    lookahead_ms: float
    initial_state: str
    autostart: bool
    midi_clock_out: bool
    midi_clock_in: bool
    params: tuple[ParamSettings, ...]
    voices: tuple[VoiceSettings, ...]
    states: tuple[SectionSettings, ...]
    events: tuple[StingerSettings, ...]
    maps: tuple[MapSettings, ...]


@dataclass(frozen=True)
class ModelSettings:
    name: str
    temperature: float | None  # None: the model card's (`sampling`)
    top_p: float | None
    key: str | None
    lowest: int
    highest: int
    max_polyphony: int | None
    fallback: bool  # the live Markov model answers a note the model cannot choose in time
    style_guidance: float = RANGES["style_guidance"].default  # runner.py: the named style pushed this much more


def _listen_default(name: str) -> float:
    return LISTEN_RANGES[name].default


@dataclass(frozen=True)
class ListenSettings:
    """The listener's: chord zone, memories, where the tempo comes from (ranges: LISTEN_RANGES)."""

    zone: str = "all"
    split_pitch: int = int(_listen_default("split_pitch"))
    chord_release_ms: float = _listen_default("chord_release_ms")
    key_decay_s: float = _listen_default("key_decay_s")
    key_margin: float = _listen_default("key_margin")
    tempo_source: str = "playing"
    tempo_memory_beats: float = _listen_default("tempo_memory_beats")
    dynamics_decay_s: float = _listen_default("dynamics_decay_s")
    osc_interval_ms: float = _listen_default("osc_interval_ms")


@dataclass(frozen=True)
class EngineSettings:
    """Everything the engine and its modes need from a patch (ports are the app's business)."""

    mode: str  # "continuation", "game", "harmonize", "accompany", "trade" or "leadsheet"
    seed: int
    budget_ms: float
    tempo_bpm: float
    model: ModelSettings
    continuation: ContinuationSettings
    style: str | None = None  # the stage model's style ([engine] style, checked against its card); None: not said
    controls: tuple[ControlMapping, ...] = ()
    game: GameSettings | None = None
    listen: ListenSettings = ListenSettings()
    modes: tuple[str, ...] = ()  # switchable live (realtime/engine/switch.py) when more than one; mode among them
    beats_per_bar: int = 4
    harmonize: HarmonizeSettings = HarmonizeSettings()
    critic: CriticSettings = CriticSettings()
    accompany: AccompanySettings = AccompanySettings()
    trade: TradeSettings = TradeSettings()
    leadsheet: LeadSheetSettings = LeadSheetSettings()
