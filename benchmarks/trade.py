"""Trade: how exactly the engine takes its bars from the player and gives them back, where a listener hears it.

1. Through JACK, at a receiving client: `realtime run patches/trade.toml` (JACK-Client backend, `[trade] bars = 2`
   so that several turns fit in a run) in its own process on a private `jackd -d dummy` at 256 frames; a JACK
   client plays a D major line at exact frames at 72, 84 and 132 BPM (--quick: 132), the patch saying 100:
   three turns of the player's, each answered, then a cut-in one bar into the engine's third turn, answered
   too (realtime/bench/trading.py), and hears the engine by frame. Figures: each engine turn's first note-on
   minus the player's bar line (p50, p99, max of |error|, ms), the player's bars an engine note started in or
   sounded into by more than 5 ms (must be 0), the latest note-off past a turn's last bar line, how long after
   the cut-in the engine's last note ended, the share of the engine's notes in D major, misses.
2. On a fake clock through the engine loop: the same at 72, 84, 100, 120, 132 and 140 BPM (within the factor
   1.4 of the patch's tempo that trade mode needs), with and without
   `follow_key` (the model alone keeps to the key this often).

    python benchmarks/trade.py [--quick] [--json out/bench/trade.json]
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
from realtime.bench.common import write_json
from realtime.bench.harmony import patch_text
from realtime.bench.jackd import JackServer
from realtime.bench.trading import judge, offline, play, trading
from realtime.patch import parse_patch

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "patches" / "trade.toml").read_text()
BARS, EXCHANGES = 2, 3


def _jack_patch() -> str:
    return patch_text(SHIPPED).replace("bars = 4 ", f"bars = {BARS} ", 1).replace("enabled = true", "enabled = false")


def through_jack(tempos: list[float], period: int = 256) -> dict:
    """This process plays and listens at the lowest SCHED_FIFO priority with a short GIL switch interval, as
    benchmarks/accompany.py does (a preempted main thread holding the GIL made the receiver miss periods)."""
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    rows = {}
    try:
        with JackServer(period=period, prefix="realtime-bench") as server, \
                priority.raised("the benchmark's player", priority.MAIN_PRIORITY, inherit=False):
            os.environ.update(server.environ())
            for bpm in tempos:
                script = trading(bpm, BARS, EXCHANGES, cut_in=True)
                run = play(_jack_patch(), script)
                row = judge(run["heard"], script)
                misses = re.findall(r"misses (\d+)", run["output"])
                row.update(misses=int(misses[-1]) if misses else None, returncode=run["returncode"],
                           tempo=(re.findall(r"\| ([\d.]+ BPM from \w+) \|", run["output"]) or [None])[-1])
                rows[f"{bpm:g}"] = row
    finally:
        sys.setswitchinterval(old_switch)
    return rows


def on_a_fake_clock() -> dict:
    rows = {}
    for follow in (True, False):
        raw = {"engine": {"mode": "trade", "tempo_bpm": 100}, "trade": {"bars": BARS, "follow_key": follow},
               "midi": {"enabled": False}, "osc": {"enabled": False}}
        for bpm in (72.0, 84.0, 100.0, 120.0, 132.0, 140.0):
            script = trading(bpm, BARS, EXCHANGES, cut_in=True)
            live, heard = offline(parse_patch(raw, "<trade>"), script)
            live.stop()
            row = judge(heard, script)
            row["tempo"] = f"{live.mode.grid.bpm:.1f} BPM from {live.mode.grid.source}"
            rows[f"{bpm:g} BPM{'' if follow else ', follow_key off'}"] = row
    return rows


def _pooled(rows: dict) -> dict:
    """Every turn's |bar-line error| of the rows together, overplayed bars, key share."""
    errors = np.abs([e for r in rows.values() for e in r["bar_line_error_ms"]])
    notes = sum(r["engine_notes"] for r in rows.values())
    key = sum(r["key_share"] * r["engine_notes"] for r in rows.values() if r["key_share"] is not None)
    out = {"turns": int(len(errors)), "overplayed_bars": sum(len(r["overplayed_bars"]) for r in rows.values()),
           "notes_outside_engine_bars": sum(r["notes_outside_engine_bars"] for r in rows.values()),
           "key_share": round(key / notes, 4) if notes else None}
    if len(errors):
        p50, p99 = np.percentile(errors, [50, 99])
        out.update(bar_line_error_ms_p50=round(float(p50), 3), bar_line_error_ms_p99=round(float(p99), 3),
                   bar_line_error_ms_max=round(float(errors.max()), 3))
    return out


def _line(label: str, r: dict) -> str:
    e = r["bar_line_abs_error_ms"]
    error = f"p50 {e['p50']:.2f} p99 {e['p99']:.2f} max {e['max']:.2f} ms" if e.get("n") else "no turn answered"
    return (f"{label}: {r['turns_answered']}/{r['engine_turns']} turns answered, bar-line error {error}; "
            f"overplayed bars {len(r['overplayed_bars'])}, latest end past a bar line "
            f"{r['latest_end_past_bar_line_ms']} ms, cut-in -> silent {r['cut_in_silence_ms']} ms; "
            f"{r['engine_notes']} notes, {r['key_share'] or 0:.1%} in key; {r.get('tempo')}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="out/bench/trade.json")
    parser.add_argument("--quick", action="store_true", help="one tempo (132 BPM) over JACK")
    args = parser.parse_args(argv)
    tempos = [132.0] if args.quick else [72.0, 84.0, 132.0]
    results: dict = {"patch_bpm": 100.0, "bars": BARS, "jack": {}, "notes": []}
    if shutil.which("jackd") is None:
        results["notes"].append("JACK rows skipped: jackd is not installed (Debian jackd2)")
    else:
        try:
            results["jack"] = through_jack(tempos)
        except (RuntimeError, OSError) as err:
            results["notes"].append(f"JACK run failed: {str(err).splitlines()[0][:200]}")
    results["fake_clock"] = on_a_fake_clock()
    for bpm, r in results["jack"].items():
        print(_line(f"JACK -p 256, {bpm} BPM, at the receiver", r) + f"; misses {r['misses']}")
    for label, r in results["fake_clock"].items():
        print(_line(f"fake clock, {label}", r))
    results["jack_pooled"] = _pooled(results["jack"]) if results["jack"] else None
    results["fake_clock_pooled"] = _pooled({k: v for k, v in results["fake_clock"].items() if "off" not in k})
    for note in results["notes"]:
        print(note)
    pooled = results["jack_pooled"]
    results["headline"] = (f"JACK -p 256, {pooled['turns']} turns at {', '.join(results['jack'])} BPM: bar-line error "
                           f"p50 {pooled.get('bar_line_error_ms_p50')} p99 {pooled.get('bar_line_error_ms_p99')} ms, "
                           f"{pooled['overplayed_bars']} overplayed bars, {pooled['key_share']:.1%} of notes in key"
                           if pooled else "no JACK row; fake clock only")
    print(results["headline"])
    write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
