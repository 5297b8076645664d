"""Synthetic performances for judging the listener: notes in beats, played at changing tempos with jitter.

A tempo map is a list of (beat, bpm) steps: from that beat on, that tempo. `perform` turns notes
given in beats into note-on/note-off moments in ns on that map, each onset moved by Gaussian
jitter (the same for the notes of one chord), so a tracker can be scored against the true beats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..events import NoteMessage


@dataclass(frozen=True)
class TempoMap:
    steps: tuple[tuple[float, float], ...]  # (from beat, bpm), the first from beat 0

    def ns_at(self, beat: float) -> int:
        """The moment a beat falls on, the tempo changing at each step."""
        ns, (start, bpm) = 0.0, self.steps[0]
        for next_start, next_bpm in self.steps[1:]:
            if beat <= next_start:
                break
            ns += (next_start - start) * 60e9 / bpm
            start, bpm = next_start, next_bpm
        return round(ns + (beat - start) * 60e9 / bpm)

    def bpm_at(self, beat: float) -> float:
        """The tempo at a beat (before beat 0: the first)."""
        return ([bpm for start, bpm in self.steps if start <= beat] or [self.steps[0][1]])[-1]


def perform(notes: list[tuple[float, float, int]], tempo: TempoMap, jitter_ms: float = 0.0, seed: int = 0,
            legato: float = 0.9, velocity: int = 80, origin_ns: int = 0) -> list[tuple[int, NoteMessage]]:
    """(onset beat, duration beats, pitch) -> (time ns, note-on / note-off) in time order (offs first on ties)."""
    rng = np.random.default_rng(seed)
    shift: dict[float, int] = {}
    events = []
    for onset, duration, pitch in notes:
        if onset not in shift:
            shift[onset] = round(rng.normal(0.0, jitter_ms) * 1e6) if jitter_ms else 0
        on_ns = origin_ns + tempo.ns_at(onset) + shift[onset]
        off_ns = max(on_ns + 1, origin_ns + tempo.ns_at(onset + duration * legato) + shift[onset])
        events += [(on_ns, 1, NoteMessage(pitch, velocity)), (off_ns, 0, NoteMessage(pitch, 0))]
    events.sort(key=lambda e: (e[0], e[1]))
    return [(at_ns, message) for at_ns, _, message in events]


def feed(listener, events: list[tuple[int, NoteMessage]], probes_ns: list[int]) -> list:
    """Play events into a listener as the engine would (refresh after each moment); snapshot at each probe."""
    out, probes, i = [], sorted(probes_ns), 0
    for at_ns, message in events:
        while i < len(probes) and probes[i] < at_ns:
            listener.refresh(probes[i])
            out.append(listener.snapshot(probes[i]))
            i += 1
        listener.hear(message, at_ns)
        listener.refresh(at_ns)
    for probe in probes[i:]:
        listener.refresh(probe)
        out.append(listener.snapshot(probe))
    return out
