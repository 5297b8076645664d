"""The small pieces of game mode: what the game says, a parameter that glides, a key's tonic, a layer.

game.py composes them into the mode; they know nothing of ports, the model or the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..model.sampling import NOTE_NAMES

MINOR_SCALES = ("minor", "harmonic-minor", "dorian", "minor-pentatonic", "blues")


@dataclass(frozen=True, slots=True)
class GameMessage:
    """What the game said: kind is "param", "state", "event", "tempo", "start" or "stop"."""

    kind: str
    name: str = ""
    value: float = 0.0


class SmoothedParam:
    """A value that glides exponentially to its target: value(t) = target + (v0 - target) e^(-(t - t0)/tau)."""

    def __init__(self, initial: float, low: float, high: float, tau_ns: float) -> None:
        self.low, self.high, self.tau_ns = low, high, tau_ns
        self.target = self._from = initial
        self._from_ns = 0

    def value_at(self, ns: int) -> float:
        if self.tau_ns <= 0 or ns <= self._from_ns:
            return self.target if self.tau_ns <= 0 or ns > self._from_ns else self._from
        return self.target + (self._from - self.target) * math.exp(-(ns - self._from_ns) / self.tau_ns)

    def set(self, value: float, at_ns: int) -> None:
        self._from, self._from_ns, self.target = self.value_at(at_ns), at_ns, value

    def normalized_at(self, ns: int) -> float:
        return (self.value_at(ns) - self.low) / (self.high - self.low)


def key_tonic(key: str) -> tuple[int, bool]:
    """(tonic pitch class, is minor) of a key written like "D minor" or "Bb dorian"."""
    parts = key.split()
    tonic = NOTE_NAMES[parts[0][0].upper()] + sum(1 if a == "#" else -1 for a in parts[0][1:])
    return tonic % 12, len(parts) > 1 and parts[1].lower() in MINOR_SCALES


class Voice:
    """The musical side of one layer (the model side is a row of the VoiceBank)."""

    __slots__ = ("settings", "index", "active", "last_onset_beats", "next", "forced_onset_beats", "gain",
                 "maps", "notes_played")

    def __init__(self, settings, index: int) -> None:
        self.settings, self.index = settings, index
        self.active = False
        self.last_onset_beats: float | None = None
        self.next: tuple[tuple[int, int, int, int], float] | None = None  # (note, onset beats)
        self.forced_onset_beats: float | None = None  # the first note of a section lands here
        self.gain = settings.gain
        self.maps: tuple = ()
        self.notes_played = 0
