"""Cold start: `realtime run` to ready, and what the first notes cost against the hundredth, live and back to back.

Every figure comes from fresh processes, with numba's cache folder (NUMBA_CACHE_DIR) empty ("cold": the
sampler is compiled at start-up) or holding what the cold process left ("warm", what `./dev` sets up):
 - ready: `realtime run patches/duet.toml --no-midi --osc-port 0` (the shipped patch, no hardware), from
   process start to its "running" line (model loaded and warmed up, ports open, threads started);
 - notes: a child builds and starts the engine as `realtime run` does (realtime.app.LiveEngine, the duet
   patch, realtime.patchports.MemoryPorts in place of MIDI and OSC), stops its threads, and times the
   next notes one by one: "step" is the model hearing a note, "note" the whole decision (that step,
   then the next note sampled).
   Each pace runs in its own process, so note 1 is the first note after start-up:
     back_to_back  no pause, note 1 right after the warm-up: what a first call still costs;
     paced         a pause (--gap-ms) before every note, as live, where notes come 100s of ms apart;
     primed        paced, plus a throwaway step (state put back) 1 ms before each note, and its cost.
   The paced child then times notes after pauses of 0.2-100 ms, and after 5 ms of spinning instead of
   sleeping (is it the CPU idling, or the caches going cold?).
Note 1, notes 2-10 and notes 91-110 ("the hundredth") are reported side by side.

    python benchmarks/cold_start.py [--quick] [--rounds 5] [--gap-ms 20] [--json out/bench/cold_start.json]
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DUET = ROOT / "patches" / "duet.toml"
MELODY = [(67, 5, 4, 4), (71, 3, 2, 4), (74, 3, 2, 5), (72, 5, 4, 4), (71, 8, 7, 3), (69, 5, 4, 4)]
PACES = ("back_to_back", "paced", "primed")
PRIME_LEAD_S = 0.001
SWEEP_GAPS_MS = (0.2, 1.0, 5.0, 20.0, 100.0)
SWEEP_NOTES = 15


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def child(pace: str, events: int, gap_ms: float) -> dict:
    """Runs in the fresh process: start-up phases, then the first notes one by one (ns)."""
    t0 = time.monotonic_ns()
    from realtime.app import LiveEngine
    from realtime.model.tokens import Token
    from realtime.patch import load_patch
    from realtime.patchports import MemoryPorts
    imported = time.monotonic_ns()

    live = LiveEngine(load_patch(DUET), ports=MemoryPorts())
    built = time.monotonic_ns()
    live.start()
    started = time.monotonic_ns()
    live.stop()  # the engine thread must not step the model beside us; the generator stays usable
    generator, runner, clock = live.generator, live.generator.runner, time.perf_counter_ns
    if pace == "back_to_back":  # as if the player began the instant start() warmed up
        generator.warm_up()

    def note(i: int) -> tuple[int, int]:
        pitch, ioi, duration, velocity = MELODY[i % len(MELODY)]
        t = clock()
        generator.feed(Token(pitch, ioi, duration, velocity))
        stepped = clock()
        generator.sample_next()
        return stepped - t, clock() - t

    steps, notes, primes = [], [], []
    for i in range(events):
        if pace != "back_to_back":
            time.sleep(gap_ms / 1000 - (PRIME_LEAD_S if pace == "primed" else 0.0))
        if pace == "primed":
            state, logits = runner.get_state(), runner.logits
            t = clock()
            runner.step(60, 3, 3, 4)
            generator.sample_next()
            primes.append(clock() - t)
            runner.reset(state)
            runner.logits = logits
            time.sleep(PRIME_LEAD_S)
        step_ns, note_ns = note(i)
        steps.append(step_ns)
        notes.append(note_ns)
    sweep = {}
    if pace == "paced":
        pauses = [(f"{g:g} ms", g / 1000, time.sleep) for g in SWEEP_GAPS_MS] + [("5 ms spinning", 0.005, _spin)]
        for label, gap_s, wait in pauses:
            timed = []
            for i in range(SWEEP_NOTES):
                wait(gap_s)
                timed.append(note(i)[0])
            sweep[label] = timed
    return {"started_ns": t0, "import_ms": (imported - t0) / 1e6, "build_ms": (built - imported) / 1e6,
            "start_ms": (started - built) / 1e6, "step_ns": steps, "note_ns": notes, "prime_ns": primes,
            "sweep_ns": sweep}


def _env(cache: Path) -> dict:
    return dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))


def _run_child(cache: Path, pace: str, events: int, gap_ms: float) -> dict:
    spawned = time.monotonic_ns()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", pace, "--events", str(events),
                           "--gap-ms", str(gap_ms)], env=_env(cache), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the {pace} child process failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["interpreter_ms"] = (result.pop("started_ns") - spawned) / 1e6  # python and site start-up
    return result


def _run_to_ready(cache: Path) -> float:
    """ms from starting `realtime run` to its 'running' line."""
    started = time.monotonic()
    command = [sys.executable, "-m", "realtime.cli", "run", str(DUET), "--no-midi", "--osc-port", "0",
               "--seconds", "0.3"]
    proc = subprocess.Popen(command, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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


def _firsts(runs: list[list[int]]) -> dict:
    """Note 1, notes 2-10 and notes 91-110 (the hundredth) over fresh processes, in us."""
    a = np.asarray(runs, dtype=np.float64) / 1000
    late = a[:, 90:110] if a.shape[1] >= 110 else a[:, a.shape[1] // 2:]
    first, hundredth = float(np.median(a[:, 0])), float(np.median(late))
    return {"note1_p50_us": round(first, 1), "note1_max_us": round(float(a[:, 0].max()), 1),
            "notes2_10_p50_us": round(float(np.median(a[:, 1:10])), 1),
            "notes2_10_max_us": round(float(a[:, 1:10].max()), 1),
            "note100_p50_us": round(hundredth, 1), "note100_p99_us": round(float(np.percentile(late, 99)), 1),
            "note1_over_note100": round(first / hundredth, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, 120 notes")
    parser.add_argument("--events", type=int, default=None, help="notes timed per process (default 200, quick 120)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause before each paced note")
    parser.add_argument("--rounds", type=int, default=None, help="fresh processes per condition (default 5, quick 1)")
    parser.add_argument("--json", default="out/bench/cold_start.json")
    parser.add_argument("--child", choices=PACES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    events = args.events or (120 if args.quick else 200)
    if args.child:
        print(json.dumps(child(args.child, events, args.gap_ms)))
        return {}
    from realtime.bench.common import write_json

    rounds = args.rounds or (1 if args.quick else 5)
    conditions = [("cold", "back_to_back"), ("cold", "paced"), ("warm", "back_to_back"), ("warm", "paced"),
                  ("warm", "primed")]
    runs: dict[tuple[str, str], list[dict]] = {c: [] for c in conditions}
    ready: dict[str, list[float]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="realtime-numba-") as tmp:
        for r in range(rounds):
            for kind in ("cold", "warm"):  # cold: empty folders; warm: the same folders, filled by the cold run
                ready[kind].append(_run_to_ready(Path(tmp) / f"run-{r}"))
            for kind, pace in conditions:  # each cold process gets an empty folder; warm ones, the first one filled
                cache = Path(tmp) / (f"{pace}-{r}" if kind == "cold" else f"{conditions[0][1]}-{r}")
                runs[(kind, pace)].append(_run_child(cache, pace, events, args.gap_ms))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results: dict = {"definition": "fresh processes; cold: an empty numba cache folder, warm: the one the cold process "
                                   "filled; step: the model hears a note; note: that step and the next note sampled",
                     "events": events, "gap_ms": args.gap_ms, "prime_lead_ms": PRIME_LEAD_S * 1000, "rounds": rounds,
                     "load_average_1min": load, "ready_ms": {}, "notes": {}}
    for kind in ("cold", "warm"):
        measured = [m for (k, _), ms in runs.items() if k == kind for m in ms]
        results["ready_ms"][kind] = {"run_to_ready_ms": round(float(np.median(ready[kind])), 1), "all": ready[kind], **{
            phase: round(float(np.median([m[phase] for m in measured])), 1)
            for phase in ("interpreter_ms", "import_ms", "build_ms", "start_ms")}}
    for (kind, pace), measured in runs.items():
        row = {"step": _firsts([m["step_ns"] for m in measured]), "note": _firsts([m["note_ns"] for m in measured])}
        if pace == "primed":
            row["prime_p50_us"] = round(float(np.median([m["prime_ns"] for m in measured])) / 1000, 1)
        results["notes"][f"{kind} {pace}"] = row
    sweeps = [m["sweep_ns"] for m in runs[("warm", "paced")] + runs[("cold", "paced")]]
    results["step_after_pause_p50_us"] = {label: round(float(np.median([s[label] for s in sweeps])) / 1000, 1)
                                          for label in sweeps[0]}
    ready_c, ready_w = results["ready_ms"]["cold"]["run_to_ready_ms"], results["ready_ms"]["warm"]["run_to_ready_ms"]
    b2b, paced = results["notes"]["warm back_to_back"]["note"], results["notes"]["warm paced"]["note"]
    results["headline"] = (f"realtime run to ready: cold {ready_c:.0f} ms, warm {ready_w:.0f} ms; a note back to back: "
                           f"1st {b2b['note1_p50_us']:.0f} us, 100th {b2b['note100_p50_us']:.0f} us; paced "
                           f"({args.gap_ms:g} ms pauses): 1st {paced['note1_p50_us']:.0f} us, 100th "
                           f"{paced['note100_p50_us']:.0f} us")
    _print(results)
    write_json(results, args.json)
    return results


def _print(results: dict) -> None:
    for kind, row in results["ready_ms"].items():
        print(f"{kind}: realtime run -> ready {row['run_to_ready_ms']:.0f} ms (median of {row['all']}); in a child: "
              f"python {row['interpreter_ms']:.0f}, import {row['import_ms']:.0f}, build {row['build_ms']:.0f} "
              f"(model, sampler, warm-up), start {row['start_ms']:.0f} ms")
    print(f"\n{'us':20} {'':5} {'note 1 p50':>10} {'max':>7} {'2-10 p50':>9} {'max':>7} {'100th p50':>10} {'p99':>7} "
          f"{'1st/100th':>9}")
    for condition, row in results["notes"].items():
        for part in ("step", "note"):
            e = row[part]
            print(f"{condition:20} {part:5} {e['note1_p50_us']:10.0f} {e['note1_max_us']:7.0f} "
                  f"{e['notes2_10_p50_us']:9.0f} {e['notes2_10_max_us']:7.0f} {e['note100_p50_us']:10.0f} "
                  f"{e['note100_p99_us']:7.0f} {e['note1_over_note100']:9.2f}")
        if "prime_p50_us" in row:
            unprimed = results["notes"]["warm paced"]["note"]["note100_p50_us"]
            print(f"{'':20} the throwaway note 1 ms before each: p50 {row['prime_p50_us']:.0f} us, so the pair costs "
                  f"{row['prime_p50_us'] + row['note']['note100_p50_us']:.0f} us against {unprimed:.0f} us unprimed")
    print("\nmodel step after a pause, p50 (us): " + ", ".join(
        f"{label} {us:.0f}" for label, us in results["step_after_pause_p50_us"].items()))
    print(f"note 1: over {results['rounds']} fresh processes; 100th: notes 91-110 of each; load average "
          f"{results['load_average_1min']}")
    print(results["headline"])


if __name__ == "__main__":
    main()
