"""How the engine's per-event cost scales: with model size, with concurrent streams, with performance length.

 - model size: LSTM 2x256, 2x512 and 2x1024 (random weights, exported once by the repository's own
   export code) and the shipped 2x192, each fp32 and dynamic int8; per event = hear one note, choose
   the next (sampling included), interleaved in rounds (each starting with a few untimed events); the weights' size is beside each, since
   a graph whose weights leave the cache becomes memory-bound;
 - concurrent streams: one batched call steps B streams at once (ModelRunner with batch B), then each
   stream's next note is sampled; cost per call and per stream-event, against B separate streams;
 - performance length: one stream generating for 100,000 events with its state carried throughout;
   per-event cost in bins of 1,000 events, with the ratio of the last tenth's median to the first's.

    python benchmarks/scaling.py [--quick] [--json out/bench/scaling.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from realtime.bench.common import (SETTLE_EVENTS, EngineEvents, cache_dir, pin_to_one_core, quiet_gc, summary_us,
                                   write_json)
from realtime.bench.graphs import parameter_count, random_graphs
from realtime.model.generator import ModelRunner, compile_sampler, sample_note
from realtime.model.modelfile import field_slices, resolve_model
from realtime.model.tokens import FIELD_SIZES, IOI_BEATS

HIDDEN_SIZES = (256, 512, 1024)
BIN_EVENTS = 1000


def model_sizes(cache: Path, shipped: str, events: int, rounds: int, notes: list[str]) -> dict:
    """Per-event cost of every size and precision, interleaved in rounds."""
    graphs = []
    for hidden in HIDDEN_SIZES:
        try:
            fp32, int8 = random_graphs(cache / "graphs", hidden)
            graphs += [(hidden, "fp32", fp32), (hidden, "int8", int8)]
        except RuntimeError as err:
            notes.append(f"2x{hidden} skipped: {err}")
            break
    shipped_fp32, shipped_int8 = resolve_model(shipped), resolve_model(f"{shipped}.int8")
    hidden = json.loads(shipped_fp32.with_suffix(".json").read_text())["architecture"]["hidden"]
    graphs += [(hidden, "fp32", shipped_fp32), (hidden, "int8", shipped_int8)]
    engines = [(h, precision, path, EngineEvents(f"2x{h} {precision}", path)) for h, precision, path in graphs]
    chunk = max(1, events // rounds)
    times = {path: np.empty(chunk * rounds, np.int64) for _, _, path, _ in engines}
    scratch = np.empty(50, np.int64)
    for *_, engine in engines:
        engine.run(50, scratch)
    quiet_gc()
    for r in range(rounds):
        for _, _, path, engine in engines:
            engine.run(SETTLE_EVENTS, scratch)  # untimed: the previous variant swept the cache
            engine.run(chunk, times[path], r * chunk)
    rows = []
    for h, precision, path, _ in engines:
        rows.append({"hidden": h, "layers": 2, "precision": precision, "graph": path.name,
                     "shipped": path in (shipped_fp32, shipped_int8), "weights_mb": round(path.stat().st_size / 1e6, 2),
                     "parameters": parameter_count(path), "per_event": summary_us(times[path])})
    return {"events": chunk * rounds, "rows": sorted(rows, key=lambda r: (r["precision"], r["hidden"]))}


class BatchedStreams:
    """B streams stepped by one batched call, each sampling its own next note from its row of logits."""

    def __init__(self, model: Path, batch: int, seed: int = 0) -> None:
        self.runner = ModelRunner(model, threads=1, batch=batch)
        self.batch = batch
        slices = field_slices()
        self.starts = np.array([s.start for s in slices.values()], dtype=np.int64)
        self.bias = np.zeros(max(s.stop for s in slices.values()))
        self.ioi_beats = np.asarray(IOI_BEATS)
        self.rng = np.random.default_rng(seed)
        self.notes = np.stack([self.rng.integers(0, FIELD_SIZES[f], batch) for f in FIELD_SIZES], 1).astype(np.int64)
        self.uniforms, self.out = np.empty(4), np.empty(4, dtype=np.int64)
        self.weights, self.order = np.empty(128), np.empty(128, dtype=np.int64)
        self.ends, self.pitches = np.zeros(4), np.zeros(4, dtype=np.int64)
        self.no_markov = np.zeros(128)  # nothing blended into the pitch (the duet's memory is off here)
        compile_sampler()

    def run(self, calls: int) -> np.ndarray:
        """Per-call wall times (ns): one batched step, then a sampled next note for every stream."""
        out = np.empty(calls, np.int64)
        clock, runner, notes = time.perf_counter_ns, self.runner, self.notes
        for i in range(calls):
            t0 = clock()
            logits = runner.step_batch(notes)
            for b in range(self.batch):
                self.rng.random(out=self.uniforms)
                sample_note(logits[b], self.bias, self.starts, 1 / 0.9, 0.92, self.uniforms, -1, 0, self.ioi_beats,
                            0.0, self.ends, self.pitches, 0, self.weights, self.order, self.out, 0.0, self.no_markov)
                notes[b] = self.out
            out[i] = clock() - t0
        return out


def streams(models: list[tuple[str, Path]], batches: list[int], calls: int) -> dict:
    out = {}
    for label, path in models:
        rows = []
        for batch in batches:
            streams_ = BatchedStreams(path, batch)
            streams_.run(20)
            quiet_gc()
            per_call = streams_.run(calls)
            rows.append({"streams": batch, "per_call": summary_us(per_call),
                         "per_stream_event": summary_us(per_call / batch)})
        one = rows[0]["per_call"]["p50_us"]
        for row in rows:  # how much one batched call saves over the same streams stepped one by one
            row["speedup_vs_separate_p50"] = round(row["streams"] * one / row["per_call"]["p50_us"], 2)
        out[label] = {"graph": path.name, "calls": calls, "rows": rows}
    return out


def length(model: Path, events: int) -> dict:
    """One stream generating `events` notes in a row, each fed back: does the cost drift as it runs?"""
    engine = EngineEvents("length", model)
    generator, runner, clock = engine.generator, engine.runner, time.perf_counter_ns
    times = np.empty(events, np.int64)
    for _ in range(100):
        generator.commit(generator.sample_next())
    quiet_gc()
    for i in range(events):
        t0 = clock()
        token = generator.sample_next()
        generator.commit(token)
        times[i] = clock() - t0
    bins = max(1, events // BIN_EVENTS)
    binned = times[:bins * BIN_EVENTS].reshape(bins, -1) if events >= BIN_EVENTS else times.reshape(1, -1)
    p50 = np.percentile(binned, 50, axis=1) / 1000
    p99 = np.percentile(binned, 99, axis=1) / 1000
    tenth = max(1, len(p50) // 10)
    slope = np.polyfit(np.arange(len(p50)) * binned.shape[1], p50, 1)[0] * 10_000 if len(p50) > 1 else 0.0
    state = runner.get_state()
    return {"graph": model.name, "events": events, "bin_events": int(binned.shape[1]),
            "per_event": summary_us(times), "bin_p50_us": np.round(p50, 2).tolist(), "bin_p99_us": np.round(p99, 2).tolist(),
            "last_over_first_tenth_p50": round(float(np.median(p50[-tenth:]) / np.median(p50[:tenth])), 3),
            "slope_us_per_10k_events": round(float(slope), 3),
            "state_finite": bool(np.isfinite(state).all()), "state_max_abs": round(float(np.abs(state).max()), 3)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events, fewer batch sizes, 10,000-event length run")
    parser.add_argument("--model", default="bach-folk-lstm")
    parser.add_argument("--events", type=int, default=None, help="per size and precision (default 1500, quick 200)")
    parser.add_argument("--length", type=int, default=None, help="events in the length run (default 100000, quick 10000)")
    parser.add_argument("--json", default="out/bench/scaling.json")
    args = parser.parse_args(argv)
    cache = cache_dir(args.json)
    notes: list[str] = []
    core = pin_to_one_core()
    events = args.events or (200 if args.quick else 1500)
    results: dict = {"pinned_core": core, "notes": notes,
                     "definition": "per event: hear one note and choose the next (sampling included); one core, one thread"}
    results["model_size"] = model_sizes(cache, args.model, events, 5 if args.quick else 10, notes)
    batch_models = [("shipped int8", resolve_model(f"{args.model}.int8"))]
    if not args.quick:
        try:
            batch_models.append(("2x1024 int8", random_graphs(cache / "graphs", 1024)[1]))
        except RuntimeError as err:
            notes.append(f"2x1024 streams skipped: {err}")
    batches = [1, 4, 16, 64] if args.quick else [1, 2, 4, 8, 16, 32, 64, 128]
    results["streams"] = streams(batch_models, batches, 100 if args.quick else 500)
    results["length"] = length(resolve_model(f"{args.model}.int8"), args.length or (10_000 if args.quick else 100_000))
    results["headline"] = _headline(results)
    _print(results)
    write_json(results, args.json)
    return results


def _headline(results: dict) -> str:
    sizes = {(r["hidden"], r["precision"]): r["per_event"]["p50_us"] for r in results["model_size"]["rows"]}
    size_part = ", ".join(f"2x{h} {sizes.get((h, 'fp32'), float('nan')):.0f}/{sizes.get((h, 'int8'), float('nan')):.0f} us"
                          for h in sorted({h for h, _ in sizes}))
    shipped = next(iter(results["streams"].values()))["rows"]
    widest = shipped[-1]
    length = results["length"]
    return (f"per event p50 fp32/int8: {size_part}; {widest['streams']} streams batched: "
            f"{widest['per_stream_event']['p50_us']:.1f} us per stream-event ({widest['speedup_vs_separate_p50']}x vs separate); "
            f"{length['events']:,} events: last/first tenth {length['last_over_first_tenth_p50']}")


def _print(results: dict) -> None:
    print(f"model size ({results['model_size']['events']} events each):")
    print(f"  {'model':10} {'prec':5} {'params':>11} {'MB':>7} {'p50':>9} {'p99':>9}")
    for r in results["model_size"]["rows"]:
        s = r["per_event"]
        print(f"  2x{r['hidden']:<8} {r['precision']:5} {r['parameters'] or 0:>11,} {r['weights_mb']:7.1f} "
              f"{s['p50_us']:8.1f}u {s['p99_us']:8.1f}u{'  (shipped)' if r['shipped'] else ''}")
    for label, block in results["streams"].items():
        print(f"streams, {label} ({block['calls']} calls each):")
        for r in block["rows"]:
            print(f"  {r['streams']:4} streams: per call {r['per_call']['p50_us']:9.1f}u p50 {r['per_call']['p99_us']:9.1f}u p99, "
                  f"per stream-event {r['per_stream_event']['p50_us']:7.1f}u, {r['speedup_vs_separate_p50']}x vs separate")
    length = results["length"]
    print(f"length: {length['events']:,} events, p50 {length['per_event']['p50_us']}u p99 {length['per_event']['p99_us']}u, "
          f"last/first tenth p50 {length['last_over_first_tenth_p50']}, slope {length['slope_us_per_10k_events']} us per 10k events")
    for note in results["notes"]:
        print(note)


if __name__ == "__main__":
    main()
