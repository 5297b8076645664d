"""The accompany mode played by a scripted left hand, for tests/test_accompany*.py and benchmarks/accompany.py.

The player strikes one chord a bar (all its notes at one moment, held for `hold` of the bar) at a tempo
of its own. `offline` plays that into the session a patch makes, on a fake clock, through its engine
loop; `play` does it over JACK, into `realtime run` in its own process, a JACK client striking the chords
at exact frames and hearing the engine by frame (realtime/bench/harmony.py `perform`). `judge` measures
what a listener hears, the same way for both: notes paired with their note-offs, each judged against the
chord the player sounded when it began.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..clock import FakeClock
from ..engine.voicing import chord_tones
from ..patch import Patch
from ..patchports import MemoryPorts
from .harmony import perform

# left-hand chords, below the shipped patch's split (60): the notes struck, and the chord's (root, quality)
CHORDS = {"C": ((48, 52, 55), (0, "maj")), "Am": ((45, 48, 52), (9, "min")), "F": ((41, 45, 48), (5, "maj")),
          "G": ((43, 47, 50), (7, "maj")), "Dm": ((50, 53, 57), (2, "min")), "G7": ((43, 47, 50, 53), (7, "7")),
          "Em": ((40, 43, 47), (4, "min")), "E7": ((40, 44, 47, 50), (4, "7")), "Bb": ((46, 50, 53), (10, "maj"))}
PROGRESSION = ("C", "Am", "F", "G", "C", "Dm", "G7", "C")
LONG_PROGRESSION = PROGRESSION + ("Am", "Em", "F", "C", "Dm", "E7", "Am", "G", "F", "Bb", "F", "G7", "C", "Am",
                                  "Dm", "G", "C")
REACTION_MS = 80.0  # a note struck this soon after a change was chosen before the engine could hear it
SAME_S = 0.001  # a note within this of a strike is at its moment (a fake clock's ns against float seconds)


@dataclass(frozen=True)
class Strike:
    at_s: float  # from the start
    name: str
    pitches: tuple[int, ...]
    off_s: float | None  # None: held through the stop

    @property
    def tones(self) -> tuple[int, ...]:
        return chord_tones(*CHORDS[self.name][1])

    @property
    def root(self) -> int:
        return CHORDS[self.name][1][0]


def strikes(progression=PROGRESSION, bpm: float = 84.0, beats_per_bar: int = 4, hold: float = 0.9,
            held_at_stop: bool = False, jitter_s: float = 0.0, seed: int = 0) -> list[Strike]:
    """One chord a bar from 0 s; each let go after `hold` of its bar (the last one never, if `held_at_stop`);
    with `jitter_s`, each strike early or late by up to that much (uniform, seeded: a human's hand)."""
    bar_s = beats_per_bar * 60.0 / bpm
    rng = np.random.default_rng(seed)
    out = []
    for i, name in enumerate(progression):
        last = i == len(progression) - 1
        at = max(0.0, i * bar_s + (rng.uniform(-jitter_s, jitter_s) if jitter_s and i else 0.0))
        off = None if last and held_at_stop else (i + hold) * bar_s
        out.append(Strike(at, name, CHORDS[name][0], off))
    return out


def offline(patch: Patch, played: list[Strike], until_s: float, velocity: int = 80, start_s: float = 0.5,
            spread_s: float = 0.0):
    """The session `patch` makes, on memory ports and a fake clock, struck `played` (each chord's notes in one
    action, as JACK delivers a chord written at one frame; with `spread_s`, one note after another that far
    apart, bottom up, as a hand strikes) through its engine loop; returned running."""
    from ..app import LiveEngine

    live = LiveEngine(patch, FakeClock(0), MemoryPorts())
    keyboard = live.ports.keyboard

    def strike(pitches, v):
        for pitch in pitches:
            keyboard.play(pitch, v)

    for chord in played:
        for i, group in enumerate([chord.pitches] if not spread_s else [(p,) for p in chord.pitches]):
            at_ns = int((start_s + chord.at_s + i * spread_s) * 1e9)
            live.clock.call_at(at_ns, lambda p=group: strike(p, velocity))
        if chord.off_s is not None:
            live.clock.call_at(int((start_s + chord.off_s) * 1e9), lambda p=chord.pitches: strike(p, 0))
    live.engine.loop(int((start_s + until_s) * 1e9))
    return live


def recorded(live, start_s: float = 0.5) -> list[tuple[float, bytes]]:
    """A memory recorder's messages as (seconds from the player's start, MIDI bytes), like a JACK receiver's."""
    heard = []
    for at_ns, m in live.ports.recorder.sent:
        status = (0x90 if m.velocity else 0x80) | m.channel
        heard.append((at_ns / 1e9 - start_s, bytes((status, m.pitch, m.velocity))))
    return heard


def play(patch_text: str, played: list[Strike], velocity: int = 80, tail_s: float = 0.3) -> dict:
    """`played` struck into `realtime run PATCH` over JACK; heard by frame; returned in seconds from the first
    chord, as `recorded` gives them."""
    events = []
    for chord in played:
        events += [(chord.at_s, bytes((0x90, pitch, velocity))) for pitch in chord.pitches]
        if chord.off_s is not None:
            events += [(chord.off_s, bytes((0x80, pitch, 0))) for pitch in chord.pitches]
    length = max(c.off_s if c.off_s is not None else c.at_s for c in played)
    run = perform(patch_text, events, length, name="accompany-player", tail_s=tail_s)
    first, rate = run["frames"][0], run["rate"]
    heard = [((frame - first) / rate, data) for frame, data in run["heard"] if len(data) == 3]
    return {"heard": heard, "period_ms": run["period"] * 1000 / rate, "output": run["output"],
            "returncode": run["returncode"]}


def notes_of(heard: list[tuple[float, bytes]]) -> tuple[list[tuple[float, float | None, int, int, int]], list]:
    """(on s, off s or None, channel, pitch, velocity) of each note-on paired with its note-off, and the
    (channel, pitch) still sounding at the end (by note-offs alone: all-notes-off controllers do not count)."""
    open_notes: dict[tuple[int, int], list] = {}
    notes = []
    for at, data in heard:
        kind, key = data[0] & 0xF0, (data[0] & 0x0F, data[1])
        if kind == 0x90 and data[2]:
            note = [at, None, key[0], key[1], data[2]]
            open_notes.setdefault(key, []).append(note)
            notes.append(note)
        elif kind in (0x80, 0x90) and open_notes.get(key):
            open_notes[key].pop(0)[1] = at
    held = sorted(key for key, waiting in open_notes.items() if waiting)
    return [tuple(n) for n in notes], held


def judge(heard, played: list[Strike], bpm: float, beats_per_bar: int = 4, from_bar: int = 1,
          bass_channel: int = 1) -> dict:
    """What a listener hears: the share of notes that are tones of the chord sounding as they begin (or
    REACTION_MS before), the bars whose lowest note is the chord's root, notes on each beat of the player's
    grid, bass onsets on that grid, the channels, what is left sounding; all from bar `from_bar` on."""
    notes, held = notes_of(heard)
    beat_s, reaction = 60.0 / bpm, REACTION_MS / 1000
    starts = [c.at_s for c in played]
    end_s = starts[-1] + beats_per_bar * beat_s

    def chord_at(t: float) -> Strike | None:
        index = int(np.searchsorted(starts, t + SAME_S, side="right")) - 1
        return played[index] if index >= 0 else None

    judged = [n for n in notes if starts[from_bar] - SAME_S <= n[0] < end_s - SAME_S]
    in_chord = 0
    for on, _, _, pitch, _ in judged:
        now, before = chord_at(on), chord_at(on - reaction)
        in_chord += any(c is not None and pitch % 12 in c.tones for c in (now, before))
    rooted, bars = 0, 0
    for k in range(from_bar, len(played)):
        start, stop = starts[k] - SAME_S, (starts[k + 1] if k + 1 < len(played) else end_s) - SAME_S
        kept = [n for n in notes if start <= n[0] < stop and not (n[1] is not None and n[1] <= start + reaction)]
        bars += 1
        rooted += bool(kept) and min(n[3] for n in kept) % 12 == played[k].root
    beats = np.arange(starts[from_bar], end_s - beat_s / 2, beat_s)
    onsets = np.array([n[0] for n in notes])
    per_beat = [int(np.sum((onsets >= b - beat_s / 2) & (onsets < b + beat_s / 2))) for b in beats]
    bass = np.array([n[0] for n in judged if n[2] == bass_channel])
    off_grid_ms = np.abs((bass - starts[0]) / beat_s - np.round((bass - starts[0]) / beat_s)) * beat_s * 1000
    reactions = []
    for k in range(1, len(played)):
        if played[k].name != played[k - 1].name:
            new = [n[0] for n in notes if n[0] >= starts[k] - 0.05 and n[3] % 12 in played[k].tones
                   and n[3] % 12 not in played[k - 1].tones]
            if new:
                reactions.append((min(new) - starts[k]) * 1000)
    velocities = [n[4] for n in judged]
    return {"notes": len(judged), "chord_tone_share": round(in_chord / max(len(judged), 1), 4),
            "bars": bars, "root_in_bass_share": round(rooted / max(bars, 1), 4),
            "notes_per_beat": per_beat, "beats_without_a_note": int(sum(c == 0 for c in per_beat)),
            "mean_notes_per_beat": round(float(np.mean(per_beat)), 3) if per_beat else 0.0,
            "bass_on_the_beat_share": round(float(np.mean(off_grid_ms <= 30.0)), 4) if len(bass) else 0.0,
            "bass_off_beat_ms_p50": round(float(np.median(off_grid_ms)), 3) if len(bass) else None,
            "change_reaction_ms": [round(r, 3) + 0.0 for r in reactions],  # (+ 0.0: never "-0.0")
            "channels": sorted({n[2] for n in notes}), "velocity_p50": float(np.median(velocities)) if velocities else None,
            "held_at_end": held}
