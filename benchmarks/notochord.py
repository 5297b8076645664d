"""Per-event cost side by side with Notochord, at the same model size and at the shipped size, in one run.

An event is what happens when the player's note arrives and the engine must answer: the model
hears it, then the next note is chosen (sampling included). For this engine that is one
`ModelRunner.step` plus `Generator.sample_next` (masks, temperature 0.9, top-p 0.92); for
Notochord it is `feed` of one MIDI event plus `query` for the next one. Notochord's trained
weights come from the internet; its compute does not depend on them, so its default architecture
(GRU 2x1024, 512-wide embeddings and heads) runs with random weights, in a virtual environment of
its own built under the cache folder (torch==2.13.0, `notochord` with --no-deps). This engine is
timed at Notochord's recurrent size (LSTM 2x1024, random weights exported by the repository's own
export code) and at its shipped size, fp32 and int8. Everything runs on one core with one thread,
interleaved in rounds so a neighbour's load hits every variant alike; each round starts with a few
untimed events per variant (see SETTLE_EVENTS in realtime/bench/common.py). Note that a played note is
one event here but two for Notochord (note-on and note-off); the ratios are per event as stated.

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
from realtime.bench.graphs import parameter_count, random_graphs
from realtime.bench.notochord_env import NOTOCHORD_VERSION, NotochordUnavailable, NotochordWorker, ensure_env
from realtime.model.runner import resolve_model

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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 events per variant, no 2-thread Notochord run")
    parser.add_argument("--events", type=int, default=None, help="timed events per variant (default 2000, quick 300)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds")
    parser.add_argument("--model", default="bach-folk-lstm", help="the shipped model to compare too")
    parser.add_argument("--venv", default=None, help="Notochord's environment (default: notochord-venv in the cache)")
    parser.add_argument("--no-notochord", action="store_true", help="time the engine only")
    parser.add_argument("--json", default="out/bench/notochord.json")
    args = parser.parse_args(argv)
    events = args.events or (300 if args.quick else 2000)
    rounds = max(1, min(args.rounds, events // 10))
    chunk = events // rounds
    events = chunk * rounds
    cache = cache_dir(args.json)
    notes: list[str] = []
    core = pin_to_one_core()

    worker, notochord = None, {}
    if args.no_notochord:
        notochord["unavailable"] = "not requested (--no-notochord)"
    else:
        started = time.monotonic()
        try:
            python = ensure_env(Path(args.venv) if args.venv else cache / "notochord-venv")
            worker = NotochordWorker(python, threads=1)
            notochord["info"] = worker.info
            notochord["setup_s"] = round(time.monotonic() - started, 1)
        except (NotochordUnavailable, OSError) as err:
            notochord["unavailable"] = str(err)
    if "unavailable" in notochord:
        notes.append(f"Notochord not timed: {notochord['unavailable']}")

    variants = [(key, label, path, EngineEvents(label, path)) for key, label, path in _engine_variants(cache, args.model, notes)]
    times = {key: np.empty(events, np.int64) for key, *_ in variants}
    noto_ns: list[int] = []
    try:
        scratch = np.empty(100, np.int64)
        for *_, engine in variants:  # warm caches and allocators
            engine.run(100, scratch)
        quiet_gc()
        for r in range(rounds):
            for key, _, _, engine in variants:
                engine.run(SETTLE_EVENTS, scratch)
                engine.run(chunk, times[key], r * chunk)
            if worker is not None:
                worker.run(SETTLE_EVENTS)
                noto_ns += worker.run(chunk)
    finally:
        if worker is not None:
            worker.close()

    results: dict = {
        "definition": "per event: hear one note and choose the next (sampling included); one core, one thread",
        "events_per_variant": events, "rounds": rounds, "settle_events_per_round": SETTLE_EVENTS, "pinned_core": core,
        "target": TARGET,
        "engine": {key: {"label": label, "graph": path.name, "parameters": parameter_count(path),
                         "per_event": summary_us(times[key]), "cdf_us": cdf_us(times[key])}
                   for key, label, path, _ in variants},
        "notochord": notochord, "notes": notes,
    }
    if noto_ns:
        info = notochord["info"]
        rnn = info.get("rnn", {})
        notochord.update({"label": f"Notochord {info['versions']['notochord']} default "
                                   f"({str(rnn.get('kind')).upper()} {rnn.get('layers')}x{rnn.get('hidden')}), 1 thread",
                          "per_event": summary_us(noto_ns), "cdf_us": cdf_us(noto_ns),
                          "events_per_note": 2})
        if not args.quick:  # a side figure: torch may use every core; not interleaved, not in the ratio
            import os

            try:
                with NotochordWorker(python, threads=len(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))),
                                     cpus=set(range(os.cpu_count() or 1))) as wide:
                    wide.run(50)
                    notochord["all_cores"] = {"threads": wide.info["threads"], "per_event": summary_us(wide.run(events // 2))}
            except NotochordUnavailable as err:
                notes.append(f"Notochord all-core run failed: {err}")
        results["notochord_speedup"] = {
            key: {**ratio(notochord["per_event"], results["engine"][key]["per_event"]), "engine": label}
            for key, label, _, _ in variants}
        results["notochord_speedup"]["notochord"] = notochord["label"]
    else:
        results["notochord_speedup"] = None
    results["headline"] = _headline(results)
    _print(results)
    write_json(results, args.json)
    return results


def _headline(results: dict) -> str:
    speedup = results["notochord_speedup"]
    if not speedup:
        return f"Notochord not timed ({results['notochord'].get('unavailable', 'no samples')})"
    parts = [f"{name}: {speedup[key]['p50']}x p50 / {speedup[key]['p99']}x p99"
             for key, name in (("same_size", "same size int8"), ("same_size_fp32", "same size fp32"),
                               ("shipped_size", "shipped int8")) if key in speedup]
    return "engine vs Notochord per event: " + ", ".join(parts)


def _print(results: dict) -> None:
    print(f"per event (hear a note, choose the next), {results['events_per_variant']} events each, one core, one thread")
    print(f"{'variant':48} {'params':>10} {'p50':>9} {'p99':>9} {'p99.9':>9}")
    rows = [(v["label"], v["parameters"], v["per_event"]) for v in results["engine"].values()]
    if "per_event" in results["notochord"]:
        rows.append((results["notochord"]["label"], results["notochord"]["info"].get("parameters"),
                     results["notochord"]["per_event"]))
    for label, params, s in rows:
        print(f"{label:48} {params or 0:>10,} {s['p50_us']:8.1f}u {s['p99_us']:8.1f}u {s['p99_9_us']:8.1f}u")
    print(results["headline"])
    for note in results["notes"]:
        print(note)


if __name__ == "__main__":
    main()
