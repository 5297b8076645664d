"""Cold start: `realtime run` to ready, and what the first notes cost, with an empty and a filled numba cache.

"Cold" is a fresh process whose numba cache folder (NUMBA_CACHE_DIR) is empty, so the compiled
sampler (realtime/model/fastsample.py) must be compiled; "warm" is a fresh process that finds
the cache the cold one left. Each is measured twice over:
 - `realtime run` of a patch with OSC in and no MIDI, from process start to the line saying it
   is running (ports open, threads started): the wait a performer sees;
 - in a child process that builds the engine as `realtime run` does (realtime.app.LiveEngine, memory
   ports): the phases (import, model load with the ONNX session and the warm-up, start) and then
   each of the first events, timed one by one (the model hears a note, the next is chosen), once
   back to back and once paced like a player (a gap between notes lets caches and clocks go idle).
The first event, events 1-10 and events 91-110 are reported side by side ("the first note as
cheap as the hundredth").

    python benchmarks/cold_start.py [--quick] [--events 200] [--json out/bench/cold_start.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATCH = "[engine]\nbudget_ms = 3.0\n[midi]\nenabled = false\n[osc]\nenabled = true\nport = 0\n"
MELODY = [(67, 5, 4, 4), (71, 3, 2, 4), (74, 3, 2, 5), (72, 5, 4, 4), (71, 8, 7, 3), (69, 5, 4, 4)]


def child(events: int, gap_ms: float) -> dict:
    """Runs in the fresh process: phases of start-up, then the first events one by one (ns)."""
    t0 = time.monotonic_ns()
    from realtime.app import LiveEngine
    from realtime.io.ports import MemoryInput, MemoryOutput
    from realtime.model.tokens import Token
    from realtime.patch import parse_patch
    imported = time.monotonic_ns()

    class Quiet(LiveEngine):
        def _open_outputs(self) -> None:
            self._add_output(MemoryOutput(self.clock, "bench"))

        def _open_inputs(self) -> None:
            self.inputs.append(MemoryInput(self.clock, "bench"))

    raw = {"engine": {"budget_ms": 3.0}, "midi": {"enabled": False}, "osc": {"enabled": False}}
    live = Quiet(parse_patch(raw, "<cold_start>"))
    built = time.monotonic_ns()
    live.start()
    started = time.monotonic_ns()
    live.stop()  # the engine thread must not step the model beside us; the generator stays usable
    generator, clock = live.generator, time.perf_counter_ns
    timings = {}
    for pace, gap_s in (("back_to_back", 0.0), ("paced", gap_ms / 1000)):
        out = []
        generator.reset()
        for i in range(events):
            pitch, ioi, duration, velocity = MELODY[i % len(MELODY)]
            if gap_s:
                time.sleep(gap_s)
            t = clock()
            generator.feed(Token(pitch, ioi, duration, velocity))
            generator.sample_next()
            out.append(clock() - t)
        timings[pace] = out
    return {"started_ns": t0, "import_ms": (imported - t0) / 1e6, "build_ms": (built - imported) / 1e6,
            "start_ms": (started - built) / 1e6, "events_ns": timings}


def _run_child(cache: Path, events: int, gap_ms: float) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    spawned = time.monotonic_ns()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--events", str(events),
                           "--gap-ms", str(gap_ms)], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the child process failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["interpreter_ms"] = (result.pop("started_ns") - spawned) / 1e6  # python and site start-up
    return result


def _run_to_ready(cache: Path, patch: Path) -> float:
    """ms from starting `realtime run` to its 'running' line."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", str(patch), "--seconds", "0.5"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("realtime: running"):
                ready = time.monotonic()
                break
        else:
            raise RuntimeError(f"`realtime run` never said it was running: {proc.stderr.read().strip()[-200:]}")
    finally:
        proc.communicate(timeout=30)
    return round((ready - started) * 1000, 1)


def _us(ns: list[int]) -> dict:
    import numpy as np

    a = np.asarray(ns, dtype=np.float64) / 1000
    hundredth = a[90:110] if len(a) >= 110 else a[len(a) // 2:]
    return {"first_us": round(float(a[0]), 1), "events_1_10_p50_us": round(float(np.median(a[:10])), 1),
            "events_1_10_max_us": round(float(a[:10].max()), 1),
            "events_91_110_p50_us": round(float(np.median(hundredth)), 1),
            "first_over_hundredth": round(float(a[0] / np.median(hundredth)), 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, 120 events")
    parser.add_argument("--events", type=int, default=None, help="first events timed (default 200, quick 120)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause before each paced event")
    parser.add_argument("--rounds", type=int, default=None, help="cold/warm pairs (default 3, quick 1)")
    parser.add_argument("--json", default="out/bench/cold_start.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    events = args.events or (120 if args.quick else 200)
    if args.child:
        print(json.dumps(child(events, args.gap_ms)))
        return {}
    from realtime.bench.common import write_json

    rounds = args.rounds or (1 if args.quick else 3)
    runs: dict[str, list] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="realtime-numba-") as tmp:
        patch = Path(tmp) / "cold.toml"
        patch.write_text(PATCH)
        for r in range(rounds):
            cache, run_cache = Path(tmp) / f"numba-{r}", Path(tmp) / f"numba-run-{r}"
            for kind in ("cold", "warm"):  # cold: empty folders; warm: the same folders, filled by the cold run
                ready_ms = _run_to_ready(run_cache, patch)
                measured = _run_child(cache, events, args.gap_ms)
                measured["run_to_ready_ms"] = ready_ms
                runs[kind].append(measured)
    results: dict = {"definition": "fresh processes; cold: empty numba cache folder, warm: the cache the cold run "
                                   "filled; events: the model hears a note and the next is chosen, timed one by one",
                     "events": events, "gap_ms": args.gap_ms, "rounds": rounds, "runs": {}}
    for kind, measured in runs.items():
        row = {phase: round(min(m[phase] for m in measured), 1)
               for phase in ("run_to_ready_ms", "interpreter_ms", "import_ms", "build_ms", "start_ms")}
        row["run_to_ready_ms_all"] = [m["run_to_ready_ms"] for m in measured]
        for pace in ("back_to_back", "paced"):
            per_round = [_us(m["events_ns"][pace]) for m in measured]
            row[pace] = {key: round(sorted(r[key] for r in per_round)[len(per_round) // 2], 2) for key in per_round[0]}
        results["runs"][kind] = row
    cold, warm = results["runs"]["cold"], results["runs"]["warm"]
    results["headline"] = (f"realtime run to ready: cold {cold['run_to_ready_ms']:.0f} ms, warm {warm['run_to_ready_ms']:.0f} ms; "
                           f"first event cold {cold['back_to_back']['first_us']:.0f} us, warm {warm['back_to_back']['first_us']:.0f} us, "
                           f"hundredth {warm['back_to_back']['events_91_110_p50_us']:.0f} us; paced ({args.gap_ms:g} ms gaps) "
                           f"p50 {warm['paced']['events_91_110_p50_us']:.0f} us")
    _print(results)
    write_json(results, args.json)
    return results


def _print(results: dict) -> None:
    print(f"{'':6} {'run->ready':>10} {'python':>7} {'import':>7} {'build':>7} {'start':>7} | "
          f"{'pace':13} {'1st':>7} {'1-10 p50':>9} {'1-10 max':>9} {'91-110':>7} {'1st/100th':>9}")
    for kind, row in results["runs"].items():
        for i, pace in enumerate(("back_to_back", "paced")):
            e = row[pace]
            head = (f"{kind:6} {row['run_to_ready_ms']:9.0f}m {row['interpreter_ms']:6.0f}m {row['import_ms']:6.0f}m "
                    f"{row['build_ms']:6.0f}m {row['start_ms']:6.0f}m" if i == 0 else " " * 50)
            print(f"{head} | {pace:13} {e['first_us']:6.0f}u {e['events_1_10_p50_us']:8.0f}u {e['events_1_10_max_us']:8.0f}u "
                  f"{e['events_91_110_p50_us']:6.0f}u {e['first_over_hundredth']:9.2f}")
    print("phases: the minimum over rounds (ms); events: the median over rounds (us)")
    print(results["headline"])


if __name__ == "__main__":
    main()
