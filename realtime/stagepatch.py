"""The stage modes' patch sections, [harmonize], [accompany], [trade] and [leadsheet], in the file's terms (1-based
channels);
realtime/patch.py reads and compiles them, realtime/stagesettings.py holds their ranges. ([critic]'s keys
are the engine's own: its section is `stagesettings.CriticSettings`.)
"""

from __future__ import annotations

from dataclasses import dataclass

from .stagesettings import AccompanySettings, HarmonizeSettings, LeadSheetSettings, TradeSettings

_HARMONIZE = HarmonizeSettings()
_ACCOMPANY = AccompanySettings()
_TRADE = TradeSettings()
_LEADSHEET = LeadSheetSettings()


@dataclass(frozen=True)
class HarmonizeSection:
    """[harmonize]: the voices mode = "harmonize" adds to each player note (ranges: stagesettings.HARMONIZE_RANGES)."""

    voices: int = _HARMONIZE.voices
    placement: str = _HARMONIZE.placement  # "below" or "above" the player's note
    channel: int = _HARMONIZE.channel + 1  # 1-16 as musicians count; never 1, the player's
    velocity_scale: float = _HARMONIZE.velocity_scale
    lowest: int = _HARMONIZE.lowest
    highest: int = _HARMONIZE.highest
    chord_confidence: float = _HARMONIZE.chord_confidence


@dataclass(frozen=True)
class AccompanySection:
    """[accompany]: the bass and chords of mode = "accompany" (ranges: stagesettings.ACCOMPANY_RANGES)."""

    bass_channel: int = _ACCOMPANY.bass_channel + 1  # 1-16 as musicians count; never 1, the player's
    chord_channel: int = _ACCOMPANY.chord_channel + 1
    bass_pattern: str = _ACCOMPANY.bass_pattern  # stagesettings.BASS_PATTERNS
    chord_pattern: str = _ACCOMPANY.chord_pattern  # stagesettings.CHORD_PATTERNS
    velocity_scale: float = _ACCOMPANY.velocity_scale
    bass_lowest: int = _ACCOMPANY.bass_lowest
    bass_highest: int = _ACCOMPANY.bass_highest
    chord_lowest: int = _ACCOMPANY.chord_lowest
    chord_highest: int = _ACCOMPANY.chord_highest
    chord_notes: int = _ACCOMPANY.chord_notes
    chord_confidence: float = _ACCOMPANY.chord_confidence
    lookahead_ms: float = _ACCOMPANY.lookahead_ms
    stop_after_bars: float = _ACCOMPANY.stop_after_bars


@dataclass(frozen=True)
class TradeSection:
    """[trade]: trading bars with the player, mode = "trade" (ranges: stagesettings.TRADE_RANGES)."""

    bars: int = _TRADE.bars
    starts: str = _TRADE.starts  # "player" or "engine": who plays the first turn
    channel: int = _TRADE.channel + 1  # 1-16 as musicians count; 2 by default, 1 (the player's) only if written
    subdivision: int = _TRADE.subdivision
    velocity_scale: float = _TRADE.velocity_scale
    lookahead_ms: float = _TRADE.lookahead_ms
    on_silence: str = _TRADE.on_silence  # "wait" or "play": a turn the player left silent
    follow_key: bool = _TRADE.follow_key


@dataclass(frozen=True)
class LeadSheetSection:
    """[leadsheet]: a band over a progression, mode = "leadsheet" (ranges: stagesettings.LEADSHEET_RANGES)."""

    progression: str = _LEADSHEET.progression  # chord symbols or Roman numerals (realtime/leadsheet/parse.py)
    key: str | None = _LEADSHEET.key
    start: str = _LEADSHEET.start  # "now" or "first_note"
    bass_channel: int = _LEADSHEET.bass_channel + 1  # 1-16 as musicians count; never 1, the player's
    chord_channel: int = _LEADSHEET.chord_channel + 1
    bass_pattern: str = _LEADSHEET.bass_pattern
    chord_pattern: str = _LEADSHEET.chord_pattern
    melody: bool = _LEADSHEET.melody
    melody_channel: int = _LEADSHEET.melody_channel + 1
    follow_tempo: bool = _LEADSHEET.follow_tempo
    velocity: int = _LEADSHEET.velocity
    lookahead_ms: float = _LEADSHEET.lookahead_ms
