"""The harmonize mode played by a scripted player, for tests/test_harmonize*.py and benchmarks/harmonize.py.

`offline` plays notes into the session a patch makes, on a fake clock, through its engine loop.
`play` is the same over JACK: a player plays a melody into `realtime run` and the harmony is measured at
a receiving client.

The engine runs as a user runs it, in its own process, on the JACK server $JACK_DEFAULT_SERVER names.
One JACK-Client client (realtime/bench/receiver.py `PlayerListener`) writes each melody note at a
chosen frame and keeps the frame of every event the engine sends, so each delay is in frames: a
harmony note-on's frame minus its player note's. `judge` turns that into the figures both use.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..childproc import engine_child
from ..clock import FakeClock
from ..patch import Patch
from ..patchports import MemoryPorts
from .receiver import ROOT, PlayerListener, _stop, _wait_for_ports

# a D major line: up the scale with a leap or two, and back down (pitch, beats), at `beat_s` a beat
MELODY = ((74, 1), (76, 1), (78, 1), (79, 1), (81, 2), (83, 1), (81, 1), (79, 1), (78, 1), (76, 1), (74, 2),
          (78, 1), (81, 1), (86, 2), (85, 1), (83, 1), (81, 1), (79, 1), (78, 1), (76, 1), (74, 2))
MELODY_KEY = frozenset({2, 4, 6, 7, 9, 11, 1})  # D major


def offline(patch: Patch, events, until_ns: int):
    """The session `patch` makes, on memory ports and a fake clock, played `events` (at ns, pitch, velocity,
    channel) through its engine loop up to `until_ns`; returned running (stop it)."""
    from ..app import LiveEngine

    live = LiveEngine(patch, FakeClock(0), MemoryPorts())
    for at_ns, pitch, velocity, channel in events:
        live.clock.call_at(at_ns, lambda p=pitch, v=velocity, c=channel: live.ports.keyboard.play(p, v, c))
    live.engine.loop(until_ns)
    return live


def _note_off(data: bytes) -> bool:
    return data[0] & 0xF0 == 0x80 or (data[0] & 0xF0 == 0x90 and data[2] == 0)


def play(patch_text: str, melody=MELODY, beat_s: float = 0.25, legato: float = 0.8, velocity: int = 96,
         hold_at_stop: int = 0) -> dict:
    """Play `melody` (then `hold_at_stop` more note-ons never released) into `realtime run PATCH`, stop it
    with Ctrl-C, and return the frames: played [(on, off or None, pitch)], heard [(frame, bytes)], its output."""
    events, at, notes = [], 0.0, []
    for pitch, beats in melody:
        events += [(at, bytes((0x90, pitch, velocity))), (at + beats * beat_s * legato, bytes((0x80, pitch, 0)))]
        notes.append(pitch)
        at += beats * beat_s
    held = [melody[i % len(melody)][0] for i in range(hold_at_stop)]
    events += [(at + 0.05 * i, bytes((0x90, pitch, velocity))) for i, pitch in enumerate(held)]
    run = perform(patch_text, events, at + 0.05 * len(held))
    frames = run.pop("frames")
    played = [(frames[2 * i], frames[2 * i + 1], pitch) for i, pitch in enumerate(notes)]
    played += [(frames[2 * len(notes) + i], None, pitch) for i, pitch in enumerate(held)]
    return {"played": played, **run}


def perform(patch_text: str, events: list[tuple[float, bytes]], length_s: float, name: str = "harmony-player",
            tail_s: float = 0.3) -> dict:
    """`realtime run PATCH` on JACK played `events` (seconds from the start, bytes) at exact frames by a JACK
    client that hears it too; stopped with Ctrl-C `tail_s` after `length_s`. Returns each event's frame,
    what was heard [(frame, bytes)] (what the stop sent included), the rate, period, output, return code, and
    `missed`: the frames of periods the player's own callback did not run from the first event on (what came
    in then it never heard, what it should have sent then went late: the run does not count)."""
    with tempfile.TemporaryDirectory() as tmp:
        patch = Path(tmp) / "patch.toml"
        patch.write_text(patch_text)
        engine = subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", str(patch), "--no-osc"],
                                  env=dict(os.environ), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, preexec_fn=engine_child)
        player = PlayerListener(name)
        try:
            _wait_for_ports(player, engine)
            time.sleep(0.5)
            frames = player.play(events)
            time.sleep(0.05 + length_s + tail_s)
            rate, period = player.rate, player.client.blocksize
        finally:  # stopped while the player still listens: what a stop sends is heard too
            out = _stop(engine) if engine.poll() is None else engine.communicate()[0]
            time.sleep(4 * player.client.blocksize / player.rate + 0.02)
            player.close()
        heard = list(player.heard)
        missed = [frame for frame in player.missed if frame >= frames[0]]
    return {"frames": frames, "heard": heard, "rate": rate, "period": period, "output": out,
            "returncode": engine.returncode, "missed": missed}


def judge(run: dict, channel: int, key: frozenset[int]) -> dict:
    """Per player note: its harmony note-ons (heard between its note-on and the next), their delay, whether
    they are in `key`, and how long after the player's note-off each ended; and what is still held."""
    rate, period = run["rate"], run["period"]
    heard = [(frame, data) for frame, data in run["heard"] if len(data) == 3 and data[0] & 0x0F == channel]
    played = run["played"]
    delays_ms, ends_ms, voices, out_of_key, unanswered = [], [], [], 0, 0
    for i, (on, off, _) in enumerate(played):
        until = played[i + 1][0] if i + 1 < len(played) else float("inf")
        ons = [(frame, data[1]) for frame, data in heard if on <= frame < until and data[0] & 0xF0 == 0x90 and data[2]]
        voices.append(len(ons))
        if not ons:
            unanswered += 1
            continue
        delays_ms.append((ons[0][0] - on) * 1000 / rate)
        out_of_key += sum(pitch % 12 not in key for _, pitch in ons)
        for frame, pitch in ons:
            end = next((f for f, data in heard if f > frame and data[1] == pitch and _note_off(data)), None)
            if off is not None:
                ends_ms.append(float("inf") if end is None else (end - off) * 1000 / rate)
    held: set[int] = set()  # by note-offs alone: an "all notes off" controller does not count here
    for _, data in heard:
        if data[0] & 0xF0 == 0x90 and data[2]:
            held.add(data[1])
        elif _note_off(data):
            held.discard(data[1])
    misses = re.findall(r"misses (\d+)", run["output"])
    delays = np.asarray(delays_ms)
    return {"notes": len(played), "unanswered": unanswered, "voices_per_note": voices,
            "harmony_notes": int(sum(voices)), "out_of_key": out_of_key,
            "delay_ms": _summary(delays), "within_ms": {f"{m:g}": round(float(np.mean(delays <= m)), 3)
                                                       for m in (period * 1000 / rate, 3.0, 8.0)} if len(delays) else {},
            "end_after_player_ms": _summary(np.asarray([e for e in ends_ms if np.isfinite(e)])),
            "never_ended": int(sum(not np.isfinite(e) for e in ends_ms)), "held_at_end": sorted(held),
            "period_ms": round(period * 1000 / rate, 3), "misses": int(misses[-1]) if misses else None,
            "raw_delay_ms": np.round(delays, 4).tolist(), "raw_end_ms": np.round(ends_ms, 4).tolist()}


def _summary(a: np.ndarray) -> dict:
    if not len(a):
        return {"n": 0}
    p50, p99 = np.percentile(a, [50, 99])
    return {"n": int(len(a)), "p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3),
            "max_ms": round(float(a.max()), 3), "min_ms": round(float(a.min()), 3)}


def patch_text(base: str, backend: str = "jack", key: str | None = None) -> str:
    """A shipped patch's text on a JACK MIDI backend (and a key, if given), its comments kept."""
    text = base.replace("[midi]\n", f'[midi]\nbackend = "{backend}"\n', 1)
    return text.replace("[model]\n", f'[model]\nkey = "{key}"\n', 1) if key else text
