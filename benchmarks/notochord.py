"""Per-event cost side by side with Notochord, at the same model size and at the shipped size, in one run.

An event is what happens when the player's note arrives and the engine must answer: the model
hears it, then the next note is chosen (sampling included). For this engine that is one
`ModelRunner.step` plus `Generator.sample_next` (masks, temperature 0.9, top-p 0.92); for
Notochord it is `feed` of one MIDI event plus `query(next_inst=1)` for the next one (the instrument
fixed, as the engine's answer is on a fixed channel, so it does not choose among 320 instruments).
Notochord's trained weights come from the internet; its compute does not depend on them, so its
default architecture (GRU 2x1024, 512-wide embeddings and heads) runs with random weights, in a
virtual environment of its own built under the cache folder (torch==2.13.0, `notochord` with
--no-deps), in fp32 and with torch's dynamic int8 quantization of its GRU and linear layers. This
engine is timed at Notochord's recurrent size (LSTM 2x1024, random weights exported by the
repository's own export code) and at its shipped size, fp32 and int8. Each ratio is printed with
both sides' parameters and multiply-adds per event (the engine's counted from its graph, Notochord's
by hooks on its layers), like for like first: fp32 against fp32, int8 against int8. Everything runs
on one core with one thread, interleaved in rounds so a neighbour's load hits every variant alike;
each round starts with a few untimed events per variant (see SETTLE_EVENTS in
realtime/bench/common.py). A played note is one event here but two for Notochord (note-on and
note-off); the ratios are per event as stated. When Notochord's environment cannot be built or
started, the result is `skipped` with the reason (the runner's convention), and nothing is timed.

    python benchmarks/notochord.py [--quick] [--events 2000] [--json out/bench/notochord.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from realtime.bench.common import (SETTLE_EVENTS, EngineEvents, cache_dir, cdf_us, pin_to_one_core, quiet_gc, ratio,
                                   summary_us, write_json)
from realtime.bench.graphs import multiply_adds, parameter_count, random_graphs
from realtime.bench.notochord_env import NotochordUnavailable, NotochordWorker, ensure_env
from realtime.model.modelfile import resolve_model

SAME_HIDDEN = 1024  # Notochord's default rnn_hidden (2 layers)
TARGET = "engine at least 10x faster than Notochord at the same size, per event, p50 and p99"


def _engine_variants(cache: Path, shipped: str, notes: list[str]) -> list[tuple[str, str, Path]]:
    """(key, label, graph) for each engine variant that can be built here."""
    out = []
    try:
        fp32, int8 = random_graphs(cache / "graphs", SAME_HIDDEN)
        out += [("same_size", f"engine LSTM 2x{SAME_HIDDEN} int8", int8),
                ("same_size_fp32", f"engine LSTM 2x{SAME_HIDDEN} fp32", fp32)]
    except RuntimeError as err:
        notes.append(f"same-size engine graphs unavailable: {err}")
    fp32 = resolve_model(shipped)
    int8 = resolve_model(f"{shipped}.int8")
    hidden = json.loads(fp32.with_suffix(".json").read_text())["architecture"]["hidden"]
    out += [("shipped_size", f"engine {shipped} 2x{hidden} int8 (default)", int8),
            ("shipped_size_fp32", f"engine {shipped} 2x{hidden} fp32", fp32)]
    return out


NOTOCHORD_VARIANTS = (("fp32", False), ("int8", True))  # (key, torch dynamic int8 quantization)
# (engine variant, Notochord variant): like for like first, then the mixed pairing an int8 default implies
PAIRS = (("same_size_fp32", "fp32"), ("same_size", "int8"), ("same_size", "fp32"),
         ("shipped_size", "int8"), ("shipped_size", "fp32"))


def _start_notochord(python: Path, notes: list[str]) -> dict:
    """{key: worker} for each Notochord precision that starts here (int8 may fail where fp32 runs)."""
    workers = {}
    for key, int8 in NOTOCHORD_VARIANTS:
        try:
            workers[key] = NotochordWorker(python, threads=1, int8=int8)
        except (NotochordUnavailable, OSError) as err:
            notes.append(f"Notochord {key} did not start: {err}")
    return workers


def _skipped(reason: str, args, notes: list[str]) -> dict:
    """The runner's convention: a benchmark that cannot run here says so and carries no figures."""
    results = {"skipped": f"Notochord not timed: {reason}", "notochord": {"unavailable": reason}, "notes": notes,
               "notochord_speedup": None, "headline": f"skipped: Notochord not timed ({reason})"}
    print(results["skipped"])
    write_json(results, args.json)
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 events per variant, no 2-thread Notochord run")
    parser.add_argument("--events", type=int, default=None, help="timed events per variant (default 2000, quick 300)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds")
    parser.add_argument("--model", default="bach-folk-lstm", help="the shipped model to compare too")
    parser.add_argument("--venv", default=None, help="Notochord's environment (default: notochord-venv in the cache)")
    parser.add_argument("--no-notochord", action="store_true", help="say skipped without building Notochord")
    parser.add_argument("--json", default="out/bench/notochord.json")
    args = parser.parse_args(argv)
    events = args.events or (300 if args.quick else 2000)
    rounds = max(1, min(args.rounds, events // 10))
    chunk = events // rounds
    events = chunk * rounds
    cache = cache_dir(args.json)
    notes: list[str] = []
    if args.no_notochord:
        return _skipped("not requested (--no-notochord)", args, notes)
    started = time.monotonic()
    try:
        python = ensure_env(Path(args.venv) if args.venv else cache / "notochord-venv")
    except (NotochordUnavailable, OSError) as err:
        return _skipped(str(err), args, notes)
    core = pin_to_one_core()  # before the workers start: they inherit this core
    workers = _start_notochord(python, notes)
    if "fp32" not in workers:
        for worker in workers.values():
            worker.close()
        return _skipped(notes[-1] if notes else "the worker did not start", args, notes)
    setup_s = round(time.monotonic() - started, 1)

    variants = [(key, label, path, EngineEvents(label, path)) for key, label, path in _engine_variants(cache, args.model, notes)]
    times = {key: np.empty(events, np.int64) for key, *_ in variants}
    noto_ns: dict[str, list[int]] = {key: [] for key in workers}
    try:
        scratch = np.empty(100, np.int64)
        for *_, engine in variants:  # warm caches and allocators
            engine.run(100, scratch)
        quiet_gc()
        for r in range(rounds):
            for key, _, _, engine in variants:
                engine.run(SETTLE_EVENTS, scratch)
                engine.run(chunk, times[key], r * chunk)
            for key, worker in workers.items():
                worker.run(SETTLE_EVENTS)
                noto_ns[key] += worker.run(chunk)
    finally:
        for worker in workers.values():
            worker.close()

    results: dict = {
        "definition": "per event: hear one note and choose the next (sampling included); one core, one thread",
        "events_per_variant": events, "rounds": rounds, "settle_events_per_round": SETTLE_EVENTS, "pinned_core": core,
        "target": TARGET,
        "engine": {key: {"label": label, "graph": path.name, "precision": "int8" if ".int8" in path.name else "fp32",
                         "parameters": parameter_count(path), "multiply_adds_per_event": multiply_adds(path),
                         "per_event": summary_us(times[key]), "cdf_us": cdf_us(times[key])}
                   for key, label, path, _ in variants},
        "notes": notes,
    }
    for key, worker in workers.items():
        info = worker.info
        rnn = info.get("rnn", {})
        entry = {"label": f"Notochord {info['versions']['notochord']} default ({str(rnn.get('kind')).upper()} "
                          f"{rnn.get('layers')}x{rnn.get('hidden')}) {key}, 1 thread",
                 "precision": info.get("precision", key), "query": info.get("query"), "info": info,
                 "parameters": info.get("parameters"), "multiply_adds_per_event": info.get("multiply_adds_per_event"),
                 "per_event": summary_us(noto_ns[key]), "cdf_us": cdf_us(noto_ns[key]), "events_per_note": 2}
        results["notochord" if key == "fp32" else f"notochord_{key}"] = entry
    results["notochord"]["setup_s"] = setup_s
    if not args.quick:  # a side figure: torch may use every core; not interleaved, not in the ratio
        import os

        cpus = set(range(os.cpu_count() or 1))
        try:
            with NotochordWorker(python, threads=len(cpus), cpus=cpus) as wide:
                wide.run(50)
                results["notochord"]["all_cores"] = {"threads": wide.info["threads"], "per_event": summary_us(wide.run(events // 2))}
        except NotochordUnavailable as err:
            notes.append(f"Notochord all-core run failed: {err}")
    results["comparisons"] = _comparisons(results)
    # engine variant -> times faster than Notochord fp32 (the figure earlier reports quoted), with the pairing named
    results["notochord_speedup"] = {
        row["engine_key"]: {"p50": row["p50"], "p99": row["p99"], "engine": row["engine"], "pairing": row["pairing"]}
        for row in results["comparisons"] if row["notochord_key"] == "fp32"}
    results["notochord_speedup"]["notochord"] = results["notochord"]["label"]
    results["notochord_speedup"]["vs_notochord_int8"] = {
        row["engine_key"]: {"p50": row["p50"], "p99": row["p99"], "engine": row["engine"], "pairing": row["pairing"]}
        for row in results["comparisons"] if row["notochord_key"] == "int8"}
    results["headline"] = _headline(results)
    _print(results)
    write_json(results, args.json)
    return results


def _notochord_entry(results: dict, key: str) -> dict | None:
    return results.get("notochord" if key == "fp32" else f"notochord_{key}")


def _comparisons(results: dict) -> list[dict]:
    """Each pairing's ratio (Notochord time / engine time) with both sides' parameters and multiply-adds."""
    rows = []
    for engine_key, noto_key in PAIRS:
        engine, noto = results["engine"].get(engine_key), _notochord_entry(results, noto_key)
        if engine is None or noto is None:
            continue
        e_macs, n_macs = engine["multiply_adds_per_event"], noto["multiply_adds_per_event"]
        rows.append({"engine_key": engine_key, "notochord_key": noto_key,
                     "pairing": f"engine {engine['precision']} vs Notochord {noto_key}",
                     "engine": engine["label"], "notochord": noto["label"],
                     **ratio(noto["per_event"], engine["per_event"]),
                     "engine_parameters": engine["parameters"], "notochord_parameters": noto["parameters"],
                     "engine_multiply_adds": e_macs, "notochord_multiply_adds": n_macs,
                     "multiply_add_ratio": round(n_macs / e_macs, 2) if e_macs and n_macs else None})
    return rows


def _headline(results: dict) -> str:
    parts = [f"{row['pairing']} ({'same size' if row['engine_key'].startswith('same') else 'shipped'}): "
             f"{row['p50']}x p50 / {row['p99']}x p99" for row in results["comparisons"]
             if (row["engine_key"], row["notochord_key"]) in (("same_size_fp32", "fp32"), ("same_size", "int8"),
                                                              ("same_size", "fp32"))]
    return "Notochord time / engine time per event: " + ", ".join(parts)


def _millions(n: int | None) -> str:
    return f"{n / 1e6:.2f}M" if n else "?"


def _print(results: dict) -> None:
    print(f"per event (hear a note, choose the next), {results['events_per_variant']} events each, one core, one thread")
    print(f"{'variant':60} {'params':>8} {'MACs':>8} {'p50':>9} {'p99':>9} {'p99.9':>9}")
    rows = list(results["engine"].values()) + [e for e in (results.get("notochord"), results.get("notochord_int8")) if e]
    for v in rows:
        s = v["per_event"]
        print(f"{v['label']:60} {_millions(v['parameters']):>8} {_millions(v['multiply_adds_per_event']):>8} "
              f"{s['p50_us']:8.1f}u {s['p99_us']:8.1f}u {s['p99_9_us']:8.1f}u")
    print(f"{'pairing':48} {'p50':>7} {'p99':>7} | {'params':>17} | {'MACs per event':>17} | MAC ratio")
    for row in results["comparisons"]:
        print(f"{row['pairing'] + (' same size' if row['engine_key'].startswith('same') else ' shipped'):48} "
              f"{row['p50']:6.2f}x {row['p99']:6.2f}x | {_millions(row['engine_parameters']):>7} vs "
              f"{_millions(row['notochord_parameters']):>7} | {_millions(row['engine_multiply_adds']):>7} vs "
              f"{_millions(row['notochord_multiply_adds']):>7} | {row['multiply_add_ratio']}")
    print(results["headline"])
    for note in results["notes"]:
        print(note)


if __name__ == "__main__":
    main()
