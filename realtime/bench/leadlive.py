"""The live lead sheet heard by a listener, for tests/test_leadsheet_live*.py and benchmarks/leadsheet_live.py.

`offline` runs the session a patch makes on a fake clock through its engine loop (the mode begun at 0, as
`realtime run` begins it), with scripted moments at which something arrives (a player's note, an OSC
request); `judge` measures what came out, the same way for a fake clock and for a JACK receiver: each band
note-on against the ideal bar lines of the patch's tempo from bar 1's line (`origin_s`), the beat-to-beat
interval error of the bass, strong-beat chord tones and roots on beat 1 by leadsheet/judge.py against the
progression(s) that should be playing (`segments`: a progression from the bar it should begin on), and what
is left sounding (by note-offs alone).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..clock import FakeClock
from ..leadsheet.judge import chord_tones_on_strong_beats, roots_on_downbeats, share
from ..leadsheet.progression import Progression
from ..patch import Patch
from ..patchports import MemoryPorts
from .accompaniment import notes_of

SNAP = 24  # onsets are judged on the nearest 24th of a beat (sixteenths, triplets); a fake clock hits them exactly
PARTS = {1: "bass", 2: "chords", 3: "melody"}  # 0-based channels of the shipped patch


def offline(patch: Patch, until_s: float, script: list[tuple[float, Callable]] = ()):
    """The session on memory ports and a fake clock up to `until_s`; each (s, call(live)) of the script runs at
    its moment. Returned running (stop it), with the engine's messages as (s, bytes)."""
    from ..app import LiveEngine

    live = LiveEngine(patch, FakeClock(0), MemoryPorts())
    for at_s, call in script:
        live.clock.call_at(int(at_s * 1e9), lambda c=call: c(live))
    live.mode.begin(0)
    live.engine.loop(int(until_s * 1e9))
    return live, heard(live)


def heard(live) -> list[tuple[float, bytes]]:
    return [(at / 1e9, bytes(((0x90 if m.velocity else 0x80) | m.channel, m.pitch, m.velocity)))
            for at, m in live.ports.recorder.sent]


def chords_of(segments: list[tuple[int, Progression]]) -> Callable[[float], object]:
    """beat (from bar 0) -> the chord that should sound, each progression from its first bar at its bar."""
    bpb = segments[0][1].beats_per_bar

    def chord_at(beat: float):
        first, progression = next(s for s in reversed(segments) if s[0] * bpb <= beat + 1e-9 or s is segments[0])
        return progression.chord_at(beat - first * bpb)
    return chord_at


def _pct(values: list[float]) -> dict | None:
    if not values:
        return None
    a = np.abs(np.array(values))
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3), "n": len(values)}


def judge(heard: list[tuple[float, bytes]], origin_s: float, bpm: float, segments: list[tuple[int, Progression]],
          bars: range | None = None, parts: dict[int, str] = PARTS) -> dict:
    """What a listener hears of the band (see the module docstring); times in s, bar 0's line at `origin_s`."""
    bpb = segments[0][1].beats_per_bar
    beat_s = 60.0 / bpm
    chord_at = chords_of(segments)
    notes: dict[str, list[tuple[float, int]]] = {part: [] for part in parts.values()}
    line_ms, bass_beats = [], []
    for t, data in heard:
        channel = data[0] & 0x0F
        if data[0] & 0xF0 != 0x90 or not data[2] or channel not in parts:
            continue
        beat = (t - origin_s) / beat_s
        snapped = round(beat * SNAP) / SNAP
        notes[parts[channel]].append((snapped, data[1]))
        if parts[channel] == "bass":
            bass_beats.append((round(beat), t))
            if round(beat) % bpb == 0:
                line_ms.append((t - origin_s - round(beat) * beat_s) * 1000)
    bass_beats.sort()
    intervals = [((t2 - t1) - (b2 - b1) * beat_s) * 1000 for (b1, t1), (b2, t2) in zip(bass_beats, bass_beats[1:])
                 if b2 > b1]
    last_bar = int(max((b for b, _ in bass_beats), default=0) // bpb)
    bars = bars if bars is not None else range(0, last_bar + 1)
    tones = lambda beat: chord_at(beat).tones  # noqa: E731
    strong = {part: chord_tones_on_strong_beats(found, tones, bpb) for part, found in notes.items()}
    all_hits, all_count = map(sum, zip(*strong.values()))
    roots = roots_on_downbeats(notes.get("bass", []), lambda beat: chord_at(beat).root, bars, bpb)
    return {"bar_line_error_ms": _pct(line_ms), "bass_interval_error_ms": _pct(intervals),
            "strong_beat_chord_tones": share(all_hits, all_count), "strong_beat_notes": all_count,
            "per_part": {part: share(*counts) for part, counts in strong.items()},
            "roots_on_downbeats": share(*roots), "downbeats": roots[1],
            "notes": {part: len(found) for part, found in notes.items()},
            "held_at_end": notes_of(heard)[1]}
