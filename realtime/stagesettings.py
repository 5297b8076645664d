"""The stage modes' settings: [harmonize], [critic], [accompany], [trade] and [leadsheet], each a table of ranges
(the README's section tables) and the frozen settings the mode runs with. realtime/settings.py holds the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ranges import Range

# [harmonize]: the harmony voices of mode = "harmonize" (realtime/engine/harmonize.py); README "Harmonize mode"
HARMONIZE_RANGES: dict[str, Range] = {r.name: r for r in (
    Range("voices", 1, 4, 2, "notes", "harmony voices added to each of the player's notes", "[harmonize]"),
    Range("channel", 2, 16, 2, "MIDI channel", "where the harmony plays (1 is the player's)", "[harmonize]"),
    Range("velocity_scale", 0.1, 2, 0.8, "x velocity", "a harmony note's velocity: the player's note's times this",
          "[harmonize]"),
    Range("lowest", 0, 127, 36, "MIDI pitch", "no harmony voice below this", "[harmonize]"),
    Range("highest", 0, 127, 96, "MIDI pitch", "no harmony voice above this", "[harmonize]"),
    Range("chord_confidence", 0, 1, 0.8, "", "the heard chord is harmonized from at this confidence (and while two of "
          "its tones sound or just did); below it, the key's triad on the melody's degree", "[harmonize]"),
)}
HARMONIZE_PLACEMENTS = ("below", "above")  # where the voices go, against the player's note


@dataclass(frozen=True)
class HarmonizeSettings:
    """The harmonize mode's: voices, placement, 0-based channel, velocity, register (ranges: HARMONIZE_RANGES)."""

    voices: int = int(HARMONIZE_RANGES["voices"].default)
    placement: str = "below"
    channel: int = int(HARMONIZE_RANGES["channel"].default) - 1
    velocity_scale: float = HARMONIZE_RANGES["velocity_scale"].default
    lowest: int = int(HARMONIZE_RANGES["lowest"].default)
    highest: int = int(HARMONIZE_RANGES["highest"].default)
    chord_confidence: float = HARMONIZE_RANGES["chord_confidence"].default
    max_note_ms: float = 30_000.0  # a player's note held longer is taken as ended (its note-off was lost)


# [critic]: the duet's best-of-K fragments (realtime/model/critic.py); README "The critic"
CRITIC_RANGES: dict[str, Range] = {r.name: r for r in (
    Range("candidates", 1, 16, 1, "fragments", "K: fragments sampled side by side before each is played; 1 is no "
          "critic", "[critic]"),
    Range("fragment_notes", 1, 8, 4, "notes", "notes in each fragment (the critic judges this many at once)", "[critic]"),
    Range("key", 0, 10, 1, "weight", "share of the fragment's notes in the key (the patch's, else the one heard)",
          "[critic]"),
    Range("chord", 0, 10, 1, "weight", "share of its notes on the beat (else all) that are tones of the chord heard",
          "[critic]"),
    Range("register", 0, 10, 0.5, "weight", "minus its mean pitch's distance, in octaves, from the phrase's", "[critic]"),
    Range("leap", 0, 10, 0.5, "weight", "minus each leap's excess over a fourth, in fifths", "[critic]"),
    Range("repetition", 0, 10, 0.5, "weight", "minus its share of repeated notes (and 1 if it repeats the last "
          "fragment)", "[critic]"),
    Range("player", 0, 10, 0, "weight", "its mean log-probability under the player's live Markov model", "[critic]"),
    Range("likelihood", 0, 10, 0.25, "weight", "its mean log-probability under the model", "[critic]"),
)}


@dataclass(frozen=True, slots=True)
class CriticSettings:
    """[critic]: K candidates of `fragment_notes` notes each, and each criterion's weight (K = 1: no critic)."""

    candidates: int = int(CRITIC_RANGES["candidates"].default)
    fragment_notes: int = int(CRITIC_RANGES["fragment_notes"].default)
    key: float = CRITIC_RANGES["key"].default
    chord: float = CRITIC_RANGES["chord"].default
    register: float = CRITIC_RANGES["register"].default
    leap: float = CRITIC_RANGES["leap"].default
    repetition: float = CRITIC_RANGES["repetition"].default
    player: float = CRITIC_RANGES["player"].default
    likelihood: float = CRITIC_RANGES["likelihood"].default
# [accompany]: the bass and chords of mode = "accompany" (realtime/engine/accompany.py); README "Accompany mode"
ACCOMPANY_RANGES: dict[str, Range] = {r.name: r for r in (
    Range("bass_channel", 2, 16, 2, "MIDI channel", "where the bass plays (1 is the player's)", "[accompany]"),
    Range("chord_channel", 2, 16, 3, "MIDI channel", "where the chords play (1 is the player's)", "[accompany]"),
    Range("velocity_scale", 0.1, 2, 0.8, "x velocity", "a note's velocity: the player's recent mean velocity times "
          "this", "[accompany]"),
    Range("bass_lowest", 0, 127, 36, "MIDI pitch", "no bass note below this", "[accompany]"),
    Range("bass_highest", 0, 127, 60, "MIDI pitch", "no bass note above this", "[accompany]"),
    Range("chord_lowest", 0, 127, 55, "MIDI pitch", "no chord note below this", "[accompany]"),
    Range("chord_highest", 0, 127, 79, "MIDI pitch", "no chord note above this", "[accompany]"),
    Range("chord_notes", 2, 5, 3, "notes", "notes in each chord voicing (a seventh chord's fifth goes first)",
          "[accompany]"),
    Range("chord_confidence", 0, 1, 0.7, "", "the chord heard is followed from this confidence on (2 of a "
          "triad's 3 tones: 0.67, 3 of a seventh's 4: 0.75)", "[accompany]"),
    Range("lookahead_ms", 1, 200, 20.0, "ms", "each note is handed to the output this long (plus the output's "
          "own lead) before it sounds; a chord heard later is played by re-striking", "[accompany]"),
    Range("stop_after_bars", 0.5, 16, 2.0, "bars", "with no key held and no note struck for this long, the "
          "accompaniment rests until you play again", "[accompany]"),
)}
BASS_PATTERNS = ("whole", "half", "quarter")  # root held; root + fifth; root, fifth, third, octave
CHORD_PATTERNS = ("whole", "half", "quarter", "backbeat")  # when the chords strike in each bar
_ACCOMPANY = {name: r.default for name, r in ACCOMPANY_RANGES.items()}


@dataclass(frozen=True)
class AccompanySettings:
    """The accompany mode's: 0-based channels, patterns, registers, velocity (ranges: ACCOMPANY_RANGES)."""

    bass_channel: int = int(_ACCOMPANY["bass_channel"]) - 1
    chord_channel: int = int(_ACCOMPANY["chord_channel"]) - 1
    bass_pattern: str = "quarter"
    chord_pattern: str = "half"
    velocity_scale: float = _ACCOMPANY["velocity_scale"]
    bass_lowest: int = int(_ACCOMPANY["bass_lowest"])
    bass_highest: int = int(_ACCOMPANY["bass_highest"])
    chord_lowest: int = int(_ACCOMPANY["chord_lowest"])
    chord_highest: int = int(_ACCOMPANY["chord_highest"])
    chord_notes: int = int(_ACCOMPANY["chord_notes"])
    chord_confidence: float = _ACCOMPANY["chord_confidence"]
    lookahead_ms: float = _ACCOMPANY["lookahead_ms"]
    stop_after_bars: float = _ACCOMPANY["stop_after_bars"]


# [trade]: trading bars with the player, mode = "trade" (realtime/engine/trade.py); README "Trading"
TRADE_RANGES: dict[str, Range] = {r.name: r for r in (
    Range("bars", 1, 16, 4, "bars", "bars in each turn: the player plays this many, then the engine as many",
          "[trade]"),
    Range("channel", 1, 16, 2, "MIDI channel", "where the engine's bars play (1, the player's, only if written)",
          "[trade]"),
    Range("subdivision", 1, 12, 4, "onsets per beat", "the engine's notes start on this grid of the beat: 4 "
          "sixteenths, 3 triplets, 12 either", "[trade]"),
    Range("velocity_scale", 0.1, 2, 1.0, "x velocity", "the engine's velocity: the player's recent mean velocity "
          "times this (shaped by the model's own accents)", "[trade]"),
    Range("lookahead_ms", 1, 200, 20.0, "ms", "each note is chosen and handed to the output this long (plus the "
          "output's own lead) before it sounds", "[trade]"),
)}
TRADE_STARTS = ("player", "engine")  # who plays the first turn
TRADE_SILENCE = ("wait", "play")  # the player's turn passed in silence: the engine waits for them, or plays on
_TRADE = {name: r.default for name, r in TRADE_RANGES.items()}


@dataclass(frozen=True)
class TradeSettings:
    """The trade mode's: bars a turn, who starts, 0-based channel, what silence means (ranges: TRADE_RANGES)."""

    bars: int = int(_TRADE["bars"])
    starts: str = "player"
    channel: int = int(_TRADE["channel"]) - 1
    subdivision: int = int(_TRADE["subdivision"])
    velocity_scale: float = _TRADE["velocity_scale"]
    lookahead_ms: float = _TRADE["lookahead_ms"]
    on_silence: str = "wait"
    follow_key: bool = True  # the engine's notes keep to the key the listener hears (unless [model] key is set)


# [leadsheet]: a band over a chord progression, mode = "leadsheet" (realtime/engine/leadsheet.py); README "Lead sheets"
LEADSHEET_RANGES: dict[str, Range] = {r.name: r for r in (
    Range("bass_channel", 2, 16, 2, "MIDI channel", "where the bass plays (1 is the player's)", "[leadsheet]"),
    Range("chord_channel", 2, 16, 3, "MIDI channel", "where the chords play (1 is the player's)", "[leadsheet]"),
    Range("melody_channel", 2, 16, 4, "MIDI channel", "where the melody plays, with melody = true (1 is the "
          "player's)", "[leadsheet]"),
    Range("velocity", 1, 127, 80, "MIDI velocity", "the bass's and the chords' velocity; the melody's accents "
          "are the model's, around it", "[leadsheet]"),
    Range("lookahead_ms", 1, 200, 20.0, "ms", "each note is handed to the output this long (plus the output's "
          "own lead) before it sounds", "[leadsheet]"),
)}
LEADSHEET_STARTS = ("now", "first_note")  # the band starts when the mode does, or on the player's first note
DEFAULT_PROGRESSION = "| Dm7 | G7 | Cmaj7 | A7 |"
_LEADSHEET = {name: r.default for name, r in LEADSHEET_RANGES.items()}


@dataclass(frozen=True)
class LeadSheetSettings:
    """The lead sheet mode's: the progression's text (checked when the patch loads), 0-based channels, patterns,
    the melody, the tempo it keeps (ranges: LEADSHEET_RANGES)."""

    progression: str = DEFAULT_PROGRESSION  # text, or a .mid file's name (looked for in `folder`)
    folder: str | None = None  # the patch's folder: where a .mid progression (patch or OSC) is looked for
    key: str | None = None  # for Roman numerals, and the melody's key; None: the text's `in KEY`, else estimated
    start: str = "now"  # LEADSHEET_STARTS
    bass_channel: int = int(_LEADSHEET["bass_channel"]) - 1
    chord_channel: int = int(_LEADSHEET["chord_channel"]) - 1
    bass_pattern: str = "quarter"  # BASS_PATTERNS
    chord_pattern: str = "half"  # CHORD_PATTERNS
    melody: bool = False  # False: the player solos over bass and chords
    melody_channel: int = int(_LEADSHEET["melody_channel"]) - 1
    follow_tempo: bool = False  # False: the patch's tempo, the lead sheet is the band's clock
    velocity: int = int(_LEADSHEET["velocity"])
    lookahead_ms: float = _LEADSHEET["lookahead_ms"]
