"""Trading bars with a scripted player, for tests/test_trade*.py and benchmarks/trade.py.

The player plays a D major line, its turns `bars` bars long, at a tempo of its own, from 0 s: bar b begins
at b * bar_s. `turns` says which bars are the player's. `offline` plays it into the session a patch makes,
on a fake clock, through its engine loop (realtime/bench/harmony.py); `play` into `realtime run` over
JACK, a JACK client playing at exact frames and hearing the engine by frame. `judge` measures what a
listener hears against the player's own bar lines, the same way for both: each engine turn's first
note-on against its bar line, engine notes sounding in the player's bars, the share in the player's key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..clock import FakeClock
from ..patchports import MemoryPorts
from .accompaniment import notes_of
from .harmony import perform

D_MAJOR = frozenset({2, 4, 6, 7, 9, 11, 1})
SCALE = (62, 64, 66, 67, 69, 71, 73, 74, 76, 78, 79, 81)
RHYTHM = ((0.0, 1.0), (1.0, 0.5), (1.5, 0.5), (2.0, 1.0), (3.0, 0.5), (3.5, 0.5))  # (beat, length) in a 4/4 bar
LEGATO = 0.8
OVERHANG_MS = 5.0  # an engine note ending this long after the player's bar line has overplayed that bar
CUT_GRACE_S = 0.03  # after a cut-in: the engine cannot hear it before it comes (JACK: a period or two later)


@dataclass(frozen=True)
class Script:
    """The player's part: which bars it plays (its turns and a cut-in), at what tempo."""

    bpm: float
    bars: int  # bars a turn
    player_bars: tuple[tuple[int, int], ...]  # [first, stop) bar ranges the player plays
    beats_per_bar: int = 4

    @property
    def bar_s(self) -> float:
        return self.beats_per_bar * 60.0 / self.bpm

    def notes(self) -> list[tuple[float, float, int]]:
        """(on s, off s, pitch) of every note the player plays."""
        beat_s, out, step = 60.0 / self.bpm, [], 0
        for first, stop in self.player_bars:
            for bar in range(first, stop):
                for beat, length in RHYTHM:
                    on = bar * self.bar_s + beat * beat_s
                    out.append((on, on + length * beat_s * LEGATO, SCALE[(step * 3) % 7 + (step // 7) % 3]))
                    step += 1
        return out

    def events(self) -> list[tuple[float, bytes]]:
        """The notes as (s, MIDI bytes) on channel 1, time-ordered."""
        events = []
        for on, off, pitch in self.notes():
            events += [(on, bytes((0x90, pitch, 90))), (off, bytes((0x80, pitch, 0)))]
        return sorted(events, key=lambda e: e[0])

    @property
    def length_s(self) -> float:
        return self.player_bars[-1][1] * self.bar_s + self.bars * self.bar_s


def trading(bpm: float, bars: int, exchanges: int, cut_in: bool = False) -> Script:
    """The player's turns for `exchanges` of its bars and the engine's; with `cut_in`, the player comes back
    one bar into the engine's last turn and plays a turn from there (which the engine answers)."""
    turns = [(2 * k * bars, (2 * k + 1) * bars) for k in range(exchanges)]
    if cut_in:
        start = (2 * exchanges - 1) * bars + 1
        turns.append((start, start + bars))
    return Script(bpm, bars, tuple(turns))


def offline(patch, script: Script, start_s: float = 0.5, until_s: float | None = None):
    """The session `patch` makes, played `script` on a fake clock through its engine loop (begun at 0, as
    `realtime run` begins its mode) up to `until_s` (default: the script's end); returned running (stop it)
    with the engine's notes heard as (s from the player's first note, bytes)."""
    from ..app import LiveEngine

    live = LiveEngine(patch, FakeClock(0), MemoryPorts())
    for at, data in script.events():
        live.clock.call_at(int((start_s + at) * 1e9), lambda d=data: live.ports.keyboard.play(d[1], d[2]))
    live.mode.begin(0)
    until = script.length_s + 0.2 if until_s is None else until_s
    live.engine.loop(int((start_s + until) * 1e9))
    heard = [(at / 1e9 - start_s, bytes(((0x90 if m.velocity else 0x80) | m.channel, m.pitch, m.velocity)))
             for at, m in live.ports.recorder.sent]
    return live, heard


def play(patch_text: str, script: Script) -> dict:
    """`script` played into `realtime run PATCH` over JACK at exact frames; what came back, heard by frame, in
    seconds from the player's first note."""
    events = script.events()
    run = perform(patch_text, events, events[-1][0] + script.bars * script.bar_s, name="trade-player")
    first, rate = run["frames"][0], run["rate"]
    heard = [((frame - first) / rate, data) for frame, data in run["heard"] if len(data) == 3]
    return {"heard": heard, "period_ms": run["period"] * 1000 / rate, "output": run["output"],
            "returncode": run["returncode"]}


def engine_turns(script: Script) -> list[tuple[int, int]]:
    """The engine's [first, stop) bars: after each player's turn, until the player plays again."""
    turns = []
    for i, (_, stop) in enumerate(script.player_bars):
        following = script.player_bars[i + 1][0] if i + 1 < len(script.player_bars) else stop + script.bars
        turns.append((stop, min(stop + script.bars, following)))
    return turns


def judge(heard, script: Script, channel: int = 1, origin_s: float = 0.0, bar_s: float | None = None) -> dict:
    """What a listener hears: each engine turn's first note-on minus its bar line (ms), notes starting outside
    the engine's bars, the player's bars an engine note sounds into (starting there, or ending more than
    OVERHANG_MS after its bar line; a turn the player cut into is judged by how soon it went silent),
    the latest end past a turn's last bar line, the share
    of engine notes in D major, the channels and what is left sounding. The bar lines are the player's
    (`origin_s + b * bar_s`; by default the script's own)."""
    notes, held = notes_of(heard)
    bar_s = script.bar_s if bar_s is None else bar_s
    line = lambda bar: origin_s + bar * bar_s  # noqa: E731
    ours = [n for n in notes if n[2] == channel and (n[1] is None or n[1] > n[0] + 1e-6)]
    errors_ms, outside, overhang_ms, overplayed = [], 0, [], set()
    turns = engine_turns(script)
    for first, stop in turns:
        starts = [n[0] for n in ours if line(first) - bar_s / 2 <= n[0] < line(stop) - 1e-4]
        if starts:
            errors_ms.append((min(starts) - line(first)) * 1000)
    after_cut = 0
    for on, off, _, _, _ in ours:
        turn = next(((a, b) for a, b in turns if line(a) - 0.02 <= on < line(b) - 1e-4), None)
        cut = next(((a, b) for a, b in turns if b - a < script.bars and line(b) - 1e-4 <= on < line(b) + CUT_GRACE_S),
                   None)
        if turn is None and cut is None:
            outside += 1
            overplayed.add(int(np.floor((on - origin_s) / bar_s + 1e-9)))
        elif turn is None:
            after_cut += 1  # handed to the output before the player came in: the cut-in's to judge, below
        elif turn[1] - turn[0] == script.bars:
            past_ms = ((off if off is not None else float("inf")) - line(turn[1])) * 1000
            overhang_ms.append(past_ms)
            if past_ms > OVERHANG_MS:
                overplayed.add(turn[1])
    cut_ms = []
    for first, stop in turns:
        if stop - first < script.bars:  # the player came back at bar `stop`: every engine note ends at once
            ends = [off for on, off, *_ in ours if on < line(stop) and off is not None and off > line(stop) - 1e-4]
            cut_ms.append(max((e - line(stop)) * 1000 for e in ends) + 0.0 if ends else 0.0)
    pitches = [n[3] for n in ours]
    errors = np.asarray(errors_ms)
    return {"engine_turns": len(turns), "turns_answered": len(errors_ms), "engine_notes": len(ours),
            "bar_line_error_ms": [round(e, 3) + 0.0 for e in errors_ms],
            "bar_line_abs_error_ms": _summary(np.abs(errors)) if len(errors) else {"n": 0},
            "notes_outside_engine_bars": outside, "overplayed_bars": sorted(overplayed),
            "notes_started_after_a_cut_in": after_cut,
            "latest_end_past_bar_line_ms": round(max(overhang_ms), 3) + 0.0 if overhang_ms else None,
            "cut_in_silence_ms": [round(c, 3) + 0.0 for c in cut_ms],
            "key_share": round(float(np.mean([p % 12 in D_MAJOR for p in pitches])), 4) if pitches else None,
            "channels": sorted({n[2] for n in notes}), "held_at_end": held}


def _summary(a: np.ndarray) -> dict:
    p50, p99 = np.percentile(a, [50, 99])
    return {"n": int(len(a)), "p50": round(float(p50), 3), "p99": round(float(p99), 3), "max": round(float(a.max()), 3)}
