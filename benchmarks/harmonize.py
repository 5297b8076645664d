"""Harmonize: how soon the harmony follows the player's note, where a listener hears it, and how it leads.

1. Through JACK, at a receiving client: `realtime run patches/harmonize.toml` (JACK-Client backend) in its
   own process on a private `jackd -d dummy` at 256 frames (64 and 1024 too, without --quick); a JACK
   client plays a D major line at exact frames and stamps the harmony by frame (realtime/bench/harmony.py):
   player's note -> its first harmony note-on (p50/p99/max), voices per note, notes out of key, each
   voice's note-off after its player note's, the engine's misses; then a run stopped with notes held.
2. In process: memory ports, the engine and output threads as `realtime run` runs them; the player's
   note handed to the input -> the harmony note-on sent by the output thread.
3. Held-out chorale sopranos (music21's corpus, after the first 40, the listening benchmark's tuning
   set) harmonized on a fake clock, key from the listener: harmony notes in music21's key (minor: with its
   raised sixth and seventh), in the key the mode used at that moment (a chord heard may lead outside it),
   each voice's motion from one note to the next, melody doublings.

    python benchmarks/harmonize.py [--quick] [--json out/bench/harmonize.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from realtime.app import LiveEngine
from realtime.bench.common import cache_dir, write_json
from realtime.bench.harmony import MELODY, MELODY_KEY, judge, offline, patch_text, play
from realtime.bench.jackd import JackServer
from realtime.model.sampling import SCALES
from realtime.patch import parse_patch
from realtime.patchports import MemoryPorts

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "patches" / "harmonize.toml").read_text()
TUNING = 40
BEAT_NS = 600_000_000  # chorales at 100 BPM


def _summary(values_ms) -> dict:
    a = np.asarray(values_ms, dtype=np.float64)
    if not len(a):
        return {"n": 0}
    p50, p99 = np.percentile(a, [50, 99])
    return {"n": int(len(a)), "p50_ms": round(float(p50), 4), "p99_ms": round(float(p99), 4),
            "max_ms": round(float(a.max()), 4)}


def through_jack(period: int, repeats: int) -> dict:
    with JackServer(period=period, prefix="realtime-bench") as server:
        os.environ.update(server.environ())
        run = judge(play(patch_text(SHIPPED), melody=MELODY * repeats), 1, MELODY_KEY)
        stopped = judge(play(patch_text(SHIPPED), melody=MELODY[:4], hold_at_stop=3), 1, MELODY_KEY)
    run["held_after_stop_with_notes_down"] = stopped["held_at_end"]
    return run


def in_process(notes: int) -> dict:
    patch = parse_patch(dict(engine={"mode": "harmonize"}, midi={"enabled": False}, osc={"enabled": False}),
                        "<harmonize>")
    live = LiveEngine(patch, ports=MemoryPorts())
    delays, unanswered = [], 0
    live.start()
    try:
        keyboard, recorder = live.ports.keyboard, live.ports.recorder
        for i in range(notes):
            pitch = MELODY[i % len(MELODY)][0]
            mark = len(recorder.sent)
            played_ns = live.clock.now_ns()
            keyboard.play(pitch, 96)
            deadline = time.monotonic() + 0.1
            while time.monotonic() < deadline and not any(m.is_on for _, m in recorder.sent[mark:]):
                time.sleep(0.002)  # (a tighter poll holds the interpreter lock the engine wants)
            ons = [t for t, m in recorder.sent[mark:] if m.is_on]
            if ons:
                delays.append((ons[0] - played_ns) / 1e6)
            else:
                unanswered += 1
            time.sleep(0.1)
            keyboard.play(pitch, 0)
            time.sleep(0.05)
        voiced = live.mode.voiced_ns[:min(live.mode.harmonized, len(live.mode.voiced_ns))] / 1e6
    finally:
        live.stop()
    return {"measures": "keyboard.play (the clock read just before) -> the first harmony note-on sent by the output "
                        "thread", "delay": _summary(delays), "unanswered": unanswered,
            "voiced": {"measures": "the note's stamp -> its voices handed to the scheduler (engine thread)",
                       **_summary(voiced)},
            "misses": live.scheduler.late_count, "held_after_stop": len(live.ports.held_at_close or ())}


def chorales(limit: int, json_path: str) -> dict:
    from realtime.bench.chorales import load

    pieces = load(cache_dir(json_path), limit=TUNING + limit)[TUNING:]
    patch = parse_patch(dict(engine={"mode": "harmonize"}, midi={"enabled": False}, osc={"enabled": False}),
                        "<chorales>")
    in_m21 = in_heard = total = doubled = 0
    moves: list[int] = []
    for piece in pieces:
        tonic, mode = piece["key"]
        m21 = {(tonic + s) % 12 for s in SCALES["major" if mode == "major" else "minor"]}
        if mode != "major":
            m21 |= {(tonic + 11) % 12, (tonic + 9) % 12}  # the raised seventh and sixth of minor
        events = []
        for on, length, pitch in piece["soprano"]:
            events += [(int(on * BEAT_NS), pitch, 90, 0), (int((on + length) * BEAT_NS) - 20_000_000, pitch, 0, 0)]
        events.sort(key=lambda e: (e[0], e[2]))
        live = offline(patch, [], 0)
        previous = None
        for at_ns, pitch, velocity, channel in events:
            live.clock.call_at(at_ns, lambda p=pitch, v=velocity: live.ports.keyboard.play(p, v))
            live.engine.loop(at_ns)
            if not velocity:
                continue
            voices = sorted((m.pitch for t, m in live.ports.recorder.sent if t == at_ns and m.is_on), reverse=True)
            heard = set(live.mode._scale(live.listener.snapshot(at_ns)))  # the key the mode harmonized in
            total += len(voices)
            in_m21 += sum(v % 12 in m21 for v in voices)
            in_heard += sum(v % 12 in heard for v in voices)
            doubled += sum(v % 12 == pitch % 12 for v in voices)
            current = live.mode._previous
            if previous is not None and len(current) == len(previous):
                moves += [abs(a - b) for a, b in zip(current, previous)]
            previous = current
        live.stop()
    a = np.asarray(moves)
    return {"chorales": len(pieces), "harmony_notes": total,
            "in_music21_key": round(in_m21 / max(total, 1), 4), "in_heard_key": round(in_heard / max(total, 1), 4),
            "melody_pitch_class_doubled": round(doubled / max(total, 1), 4),
            "voice_motion_semitones": {"p50": float(np.median(a)), "p90": float(np.percentile(a, 90)),
                                       "within_2": round(float(np.mean(a <= 2)), 4)} if len(a) else {}}


def _print(results: dict) -> None:
    """One line per row: the delay's p50 / p99 / max, then what else the row found."""
    rows = []
    for period, r in results["jack"].items():
        held = len(r["held_at_end"]) + len(r["held_after_stop_with_notes_down"])
        rows.append((f"JACK -p {period}, at the receiver", r["delay_ms"],
                     f"{r['out_of_key']} of {r['harmony_notes']} out of key; ended after the player's note p50 "
                     f"{r['end_after_player_ms']['p50_ms']:.2f} max {r['end_after_player_ms']['max_ms']:.2f} ms; "
                     f"held {held}; misses {r['misses']}"))
    p = results["in_process"]
    rows.append(("in process, sent by the output thread", p["delay"],
                 f"voiced on the engine thread p50 {p['voiced']['p50_ms']:.3f} p99 {p['voiced']['p99_ms']:.3f} ms; "
                 f"held {p['held_after_stop']}; misses {p['misses']}"))
    print("player's note -> its first harmony note-on (ms): p50 / p99 / max")
    for label, delay, remarks in rows:
        print(" / ".join(f"{delay[k]:.3f}" for k in ("p50_ms", "p99_ms", "max_ms")).rjust(24), f"{label}: {remarks}")
    c = results["chorales"]
    print(f"{c['chorales']} held-out chorale sopranos, {c['harmony_notes']} harmony notes: in music21's key "
          f"{c['in_music21_key']:.1%}, in the key heard {c['in_heard_key']:.1%}, melody doubled "
          f"{c['melody_pitch_class_doubled']:.1%}, voice motion p50 {c['voice_motion_semitones'].get('p50')} p90 "
          f"{c['voice_motion_semitones'].get('p90')} semitones")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="out/bench/harmonize.json")
    parser.add_argument("--quick", action="store_true", help="256 frames only, one pass, 40 chorales")
    parser.add_argument("--periods", default=None, help="JACK periods (default 64,256,1024; --quick: 256)")
    parser.add_argument("--chorales", type=int, default=None, help="held-out chorales (default all 291; --quick: 40)")
    parser.add_argument("--repeats", type=int, default=None, help="passes of the JACK line (default 3; --quick: 1)")
    args = parser.parse_args(argv)
    periods = [int(p) for p in (args.periods or ("256" if args.quick else "64,256,1024")).split(",")]
    results: dict = {"budget_ms": 8.0, "jack": {}, "notes": []}
    if shutil.which("jackd") is None:
        results["notes"].append("JACK rows skipped: jackd is not installed (Debian jackd2)")
    for period in periods if shutil.which("jackd") else []:
        try:
            results["jack"][str(period)] = through_jack(period, args.repeats or (1 if args.quick else 3))
        except (RuntimeError, OSError) as err:
            results["notes"].append(f"JACK -p {period} failed: {str(err).splitlines()[0][:200]}")
    results["in_process"] = in_process(40 if args.quick else 200)
    results["chorales"] = chorales(args.chorales or (40 if args.quick else 291), args.json)
    _print(results)
    for note in results["notes"]:
        print(note)
    row, p, c = results["jack"].get("256"), results["in_process"]["delay"], results["chorales"]
    results["headline"] = (f"JACK -p 256 player note -> harmony at the receiver p50 {row['delay_ms']['p50_ms']:.2f} / "
                           f"p99 {row['delay_ms']['p99_ms']:.2f} ms; " if row else "") + \
        f"in process p50 {p['p50_ms']:.3f} / p99 {p['p99_ms']:.3f} ms; chorales in key {c['in_music21_key']:.1%}"
    write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
