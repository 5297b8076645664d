"""Accompany: how well the bass and chords follow a left hand striking one chord a bar, where a listener hears them.

1. Through JACK, at a receiving client: `realtime run patches/accompany.toml` (JACK-Client backend) in its own
   process on a private `jackd -d dummy` at 256 frames (64 and 1024 too, without --quick); a JACK client
   strikes a 25-bar progression (8 bars with --quick) at 84 BPM, the patch saying 100, and stamps the
   engine's notes by frame (realtime/bench/accompaniment.py). From the second bar on: the share of notes
   that are tones of the chord sounding as they begin (or 80 ms before: the engine cannot hear a chord
   before it is struck), the share of bars whose lowest note is the chord's root, notes per beat of the
   player's grid and beats without one, bass onsets within 30 ms of that grid, the strike -> first note
   of the new chord delay, the engine's misses, notes left sounding after a stop with notes down.
2. On a fake clock through the engine loop: the same figures at 60, 84, 120 and 150 BPM, the chords struck
   exactly, and as a hand strikes them (each strike up to 20 or 40 ms early or late, its notes 8 or 15 ms
   apart, seeded).

    python benchmarks/accompany.py [--quick] [--json out/bench/accompany.json]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

from realtime import priority
from realtime.bench.accompaniment import LONG_PROGRESSION, PROGRESSION, judge, offline, play, recorded, strikes
from realtime.bench.common import write_json
from realtime.bench.harmony import patch_text
from realtime.bench.jackd import JackServer
from realtime.patch import parse_patch

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "patches" / "accompany.toml").read_text()
PLAYER_BPM = 84.0
FIGURES = ("notes", "chord_tone_share", "root_in_bass_share", "mean_notes_per_beat", "beats_without_a_note",
           "bass_on_the_beat_share")


def _row(result: dict) -> dict:
    row = {key: result[key] for key in FIGURES}
    reactions = np.asarray(result["change_reaction_ms"])
    if len(reactions):
        row["change_reaction_ms"] = {"p50": round(float(np.median(reactions)), 3) + 0.0,
                                     "max": round(float(reactions.max()), 3) + 0.0}
    row["held_at_end"] = result["held_at_end"]
    return row


def through_jack(period: int, progression) -> dict:
    """This process is the player and the receiver: its main thread at the lowest SCHED_FIFO priority and a
    short GIL switch interval, as `realtime run`'s and the JACK tests' (tests/conftest.py): on a busy machine
    a main thread preempted while holding the GIL made the receiver's JACK callback miss periods (events lost)."""
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        with JackServer(period=period, prefix="realtime-bench") as server, \
                priority.raised("the benchmark's player", priority.MAIN_PRIORITY, inherit=False):
            os.environ.update(server.environ())
            played = strikes(progression, PLAYER_BPM)
            run = play(patch_text(SHIPPED), played)
            stopped = play(patch_text(SHIPPED), strikes(progression[:3], PLAYER_BPM, held_at_stop=True), tail_s=1.0)
    finally:
        sys.setswitchinterval(old_switch)
    row = _row(judge(run["heard"], played, PLAYER_BPM))
    misses = re.findall(r"misses (\d+)", run["output"])
    tempo = re.findall(r"\| ([\d.]+) BPM from (\w+) \|", run["output"])
    row.update(bars=len(progression), misses=int(misses[-1]) if misses else None,
               tempo=f"{tempo[-1][0]} BPM from {tempo[-1][1]}" if tempo else None,
               held_after_stop_with_notes_down=judge(stopped["heard"], strikes(progression[:3], PLAYER_BPM),
                                                     PLAYER_BPM)["held_at_end"],
               # a held note with no panic heard either: the receiver lost the end, not the engine
               stop_panic_heard=_panic_heard(stopped["heard"]), stop_returncodes=[run["returncode"],
                                                                                  stopped["returncode"]])
    return row


def _panic_heard(heard) -> bool:
    """Did the receiver hear an all-notes-off controller (the output's panic on a stop)?"""
    return any(data[0] & 0xF0 == 0xB0 and data[1] == 123 for _, data in heard)


def on_a_fake_clock(progression) -> dict:
    raw = {"engine": {"mode": "accompany"}, "listen": {"zone": "left"}, "midi": {"enabled": False},
           "osc": {"enabled": False}}
    patch = parse_patch(raw, "<accompany>")
    rows = {}
    for bpm in (60.0, 84.0, 120.0, 150.0):
        for label, jitter, spread in (("exact", 0.0, 0.0), ("hand 20 ms", 0.02, 0.008), ("hand 40 ms", 0.04, 0.015)):
            played = strikes(progression, bpm, jitter_s=jitter, seed=1)
            live = offline(patch, played, played[-1].at_s + 240 / bpm, spread_s=spread)
            live.stop()
            row = _row(judge(recorded(live), played, bpm))
            row["tempo"] = f"{live.mode.grid.bpm:.1f} BPM from {live.mode.grid.source}"
            rows[f"{bpm:g} BPM, {label}"] = row
    return rows


def _line(label: str, r: dict) -> str:
    reaction = r.get("change_reaction_ms", {})
    extra = f"; change -> new chord p50 {reaction['p50']:.1f} max {reaction['max']:.1f} ms" if reaction else ""
    return (f"{label}: {r['notes']} notes, chord tones {r['chord_tone_share']:.1%}, root lowest {r['root_in_bass_share']:.1%}"
            f" of bars, {r['mean_notes_per_beat']:.2f} notes a beat ({r['beats_without_a_note']} beats without), "
            f"bass on the beat {r['bass_on_the_beat_share']:.1%}, {r.get('tempo')}{extra}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="out/bench/accompany.json")
    parser.add_argument("--quick", action="store_true", help="256 frames only, the 8-bar progression")
    parser.add_argument("--periods", default=None, help="JACK periods (default 64,256,1024; --quick: 256)")
    args = parser.parse_args(argv)
    progression = PROGRESSION if args.quick else LONG_PROGRESSION
    periods = [int(p) for p in (args.periods or ("256" if args.quick else "64,256,1024")).split(",")]
    results: dict = {"player_bpm": PLAYER_BPM, "patch_bpm": 100.0, "jack": {}, "notes": []}
    if shutil.which("jackd") is None:
        results["notes"].append("JACK rows skipped: jackd is not installed (Debian jackd2)")
    for period in periods if shutil.which("jackd") else []:
        try:
            results["jack"][str(period)] = through_jack(period, progression)
        except (RuntimeError, OSError) as err:
            results["notes"].append(f"JACK -p {period} failed: {str(err).splitlines()[0][:200]}")
    results["fake_clock"] = on_a_fake_clock(LONG_PROGRESSION)
    for period, r in results["jack"].items():
        held = len(r["held_at_end"]) + len(r["held_after_stop_with_notes_down"])
        print(_line(f"JACK -p {period}, {r['bars']} bars at the receiver", r) + f"; misses {r['misses']}; held {held}"
              + ("" if r["stop_panic_heard"] else " (the receiver heard no panic at the stop: it lost the end)"))
    for label, r in results["fake_clock"].items():
        print(_line(f"fake clock, {label}", r))
    for note in results["notes"]:
        print(note)
    row = results["jack"].get("256")
    results["headline"] = (f"JACK -p 256 at 84 BPM: chord tones {row['chord_tone_share']:.1%}, root lowest "
                           f"{row['root_in_bass_share']:.1%} of bars, {row['mean_notes_per_beat']:.2f} notes a beat "
                           f"({row['beats_without_a_note']} beats without)" if row else
                           "no JACK row; fake clock only")
    write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
