"""Lead sheet, live: where `mode = "leadsheet"` puts its bars, where a progression sent live lands, and what it costs.

On a fake clock through the engine loop, as `realtime run patches/leadsheet.toml` builds it (memory ports):

1. Bars: 16 bars at 72, 100 and 150 BPM, with and without the melody: every band note-on against the ideal
   bar lines, strong-beat chord tones, roots on beat 1 (realtime/bench/leadlive.py `judge`).
2. Landing: `/leadsheet/progression` sent at 24 moments across one bar (and 1, 5, 10, 15, 19, 25 ms before a
   bar line): the bar it lands on, against the next bar line (one sent within the lookahead, 20 ms, when the
   bar's first notes are handed over, lands a bar later: the README says so).
3. Cost, in this process's real time (the fake clock does not hide it): planning a bar (bass and chords,
   and the melody's model steps), handing a tick's notes over, and parsing a progression sent live (p50, p99).
   The JACK figures are tests/test_leadsheet_jack.py's (`pytest -s` prints them).

    python benchmarks/leadsheet_live.py [--quick] [--json out/bench/leadsheet_live.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from realtime.bench.common import write_json
from realtime.bench.leadlive import judge, offline
from realtime.events import LeadSheetRequest
from realtime.leadsheet.parse import parse_text
from realtime.patch import parse_patch
from realtime.stagesettings import DEFAULT_PROGRESSION

BASE = {"engine": {"mode": "leadsheet"}, "midi": {"enabled": False}, "osc": {"enabled": False}}
NEW = "| C | Am | F | G7 |"
LOOKAHEAD_S = 0.02


def _patch(bpm: float, melody: bool):
    return parse_patch({**BASE, "engine": {"mode": "leadsheet", "tempo_bpm": bpm}, "leadsheet": {"melody": melody}},
                       "bench.toml")


def bars(tempos: list[float], count: int) -> list[dict]:
    rows = []
    for bpm in tempos:
        for melody in (False, True):
            live, heard = offline(_patch(bpm, melody), count * 4 * 60 / bpm + 0.3)
            live.stop()
            r = judge(heard, LOOKAHEAD_S, bpm, [(0, parse_text(DEFAULT_PROGRESSION))], bars=range(count))
            rows.append({"bpm": bpm, "melody": melody, "bar_line_max_ms": r["bar_line_error_ms"]["max"],
                         "chord_tones": r["strong_beat_chord_tones"], "roots": r["roots_on_downbeats"],
                         "notes": r["notes"], "held_at_end": live.ports.held_at_close == set()})
    return rows


def landing(points: int) -> dict:
    """The bar a progression lands on, sent at `points` moments across bar 3 and just before bar 4's line."""
    bar_s = 2.4
    moments = [LOOKAHEAD_S + 2 * bar_s + bar_s * i / points for i in range(points)]
    moments += [LOOKAHEAD_S + 3 * bar_s - ms / 1000 for ms in (1, 5, 10, 15, 19, 25)]
    rows = []
    for at in moments:
        def send(live):
            live.engine._hear(LeadSheetRequest("progression", NEW), live.clock.now_ns())
        live, heard = offline(_patch(100.0, False), 9 * bar_s, [(at, send)])
        live.stop()
        bass = {round((t - LOOKAHEAD_S) / bar_s): d[1] % 12 for t, d in heard
                if d[0] == 0x91 and d[2] and abs((t - LOOKAHEAD_S) / bar_s - round((t - LOOKAHEAD_S) / bar_s)) < 1e-6}
        landed = next(b for b in range(2, 6) if [bass.get(b + i) for i in range(4)] == [0, 9, 5, 7])  # C Am F G7
        before_line_ms = (LOOKAHEAD_S + 3 * bar_s - at) * 1000
        rows.append({"before_bar_4_ms": round(before_line_ms, 1), "landed_on_bar": landed + 1})
    on_next = [r for r in rows if r["landed_on_bar"] == 4]
    late = [r for r in rows if r["landed_on_bar"] == 5]
    return {"rows": rows, "on_the_next_bar_line": len(on_next), "a_bar_later": len(late),
            "latest_on_the_next_ms_before": min(r["before_bar_4_ms"] for r in on_next),
            "a_bar_later_within_ms": max((r["before_bar_4_ms"] for r in late), default=None)}


def cost(count: int) -> dict:
    """Real time of each part of the mode's work while a fake clock runs it (ms: p50, p99, max)."""
    out = {}
    for melody in (False, True):
        live, _ = offline(_patch(100.0, melody), 0.1)
        mode, planner = live.mode, live.mode.planner
        plans, ticks = [], []
        plan, tick = planner.plan, mode.tick

        def timed_plan(bar, plan=plan):
            started = time.perf_counter_ns()
            notes = plan(bar)
            plans.append(time.perf_counter_ns() - started)
            return notes

        def timed_tick(now, tick=tick):
            started = time.perf_counter_ns()
            tick(now)
            ticks.append(time.perf_counter_ns() - started)

        planner.plan, mode.tick = timed_plan, timed_tick
        live.engine.loop(int(count * 2.4e9))
        parses = []
        for _ in range(20):
            started = time.perf_counter_ns()
            mode.request_leadsheet(LeadSheetRequest("progression", NEW), live.clock.now_ns())
            parses.append(time.perf_counter_ns() - started)
        live.stop()
        out["melody" if melody else "bass_chords"] = {
            name: {"p50": round(float(np.percentile(v, 50)) / 1e6, 3), "p99": round(float(np.percentile(v, 99)) / 1e6, 3),
                   "max": round(max(v) / 1e6, 3), "n": len(v)}
            for name, v in (("plan_bar_ms", plans), ("tick_ms", ticks), ("replace_ms", parses))}
    return out


def table(results: dict) -> list[str]:
    lines = ["| tempo | melody | band note-ons off the bar lines, max | strong-beat chord tones | roots on beat 1 |",
             "|---|---|---|---|---|"]
    for r in results["bars"]:
        lines.append(f"| {r['bpm']:g} BPM | {'yes' if r['melody'] else 'no'} | {r['bar_line_max_ms']:.3f} ms | "
                     f"{r['chord_tones']:.1%} | {r['roots']:.1%} |")
    land = results["landing"]
    lines += ["", f"landing: {land['on_the_next_bar_line']} of {len(land['rows'])} sent on the next bar line (the "
              f"latest {land['latest_on_the_next_ms_before']} ms before it), {land['a_bar_later']} a bar later "
              f"(sent at most {land['a_bar_later_within_ms']} ms before the line)", "",
              "| work (real time, ms) | plan a bar p50 / p99 | a tick p50 / p99 / max | a progression sent live p50 |",
              "|---|---|---|---|"]
    for name, c in results["cost"].items():
        lines.append(f"| {name.replace('_', ' and ')} | {c['plan_bar_ms']['p50']} / {c['plan_bar_ms']['p99']} | "
                     f"{c['tick_ms']['p50']} / {c['tick_ms']['p99']} / {c['tick_ms']['max']} | "
                     f"{c['replace_ms']['p50']} |")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="out/bench/leadsheet_live.json")
    parser.add_argument("--quick", action="store_true", help="100 BPM, 8 bars, 8 landing moments, 16 bars of cost")
    args = parser.parse_args(argv)
    tempos, count, points, cost_bars = ([100.0], 8, 8, 16) if args.quick else ([72.0, 100.0, 150.0], 16, 24, 64)
    results = {"bars": bars(tempos, count), "landing": landing(points), "cost": cost(cost_bars), "quick": args.quick}
    results["table"] = table(results)
    for line in results["table"]:
        print(line)
    c, land = results["cost"]["melody"], results["landing"]
    results["headline"] = (f"bar lines exact on a fake clock, chord tones "
                           f"{min(r['chord_tones'] for r in results['bars']):.0%}, roots "
                           f"{min(r['roots'] for r in results['bars']):.0%}; a progression lands on the next bar line "
                           f"unless sent within {land['a_bar_later_within_ms']} ms of it; planning a bar with the "
                           f"melody p99 {c['plan_bar_ms']['p99']} ms, a tick p99 {c['tick_ms']['p99']} ms")
    write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
