"""Per-step and per-generated-note latency of the shipped model: fp32, int8 and a numpy reference.

One thread, chained steps (each step is fed the note it generated, as in performance), timed
one by one with perf_counter_ns. "step" is the model call alone; "sample" is choosing the note
(all four fields under the masks); "note" is both: everything the engine does to produce one note.
The variants run interleaved in rounds, so a neighbour's load hits all of them alike. The int8
model also runs with the duet's memory of the player blended in (blend 0.5; the memory learned
200 phrases the model played): its "sample" includes the memory's distribution after the last
notes (engine/playermemory.py), so the blend's cost per note is its sample time minus int8's.

    python benchmarks/model_step.py [--model bach-folk-lstm] [--steps 20000] [--json out/bench/model_step.json]
    python benchmarks/model_step.py --quick   # 2,000 steps (for `realtime bench --quick`)
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from realtime.bench.common import cdf_us, write_json
from realtime.engine.playermemory import PlayerMemory
from realtime.model.generator import Generator
from realtime.model.reference import NumpyLSTM, weights_path
from realtime.model.generator import ModelRunner
from realtime.model.modelfile import resolve_model
from realtime.model.sampling import Sampler


BLENDED = "onnxruntime int8 + blend 0.5"
GUIDANCE = 2.0  # `[model] style_guidance` as the README advises it, a style named


def summary_us(ns: np.ndarray) -> dict:
    p50, p99, p999 = np.percentile(ns, [50, 99, 99.9]) / 1000
    return {"p50_us": round(p50, 1), "p99_us": round(p99, 1), "p99_9_us": round(p999, 1),
            "mean_us": round(float(ns.mean()) / 1000, 1), "max_us": round(float(ns.max()) / 1000, 1), "n": int(len(ns))}


class _Variant:
    """One way of producing notes, stepped in chunks so all variants share the same moments."""

    def __init__(self, name: str, stepper, seed: int, memory: PlayerMemory | None = None) -> None:
        self.name, self.memory = name, memory
        self.generator = Generator(stepper, Sampler(seed, 0.9, 0.92))
        self.generator.reset()
        self.recent: list[int] = []  # the pitches played, for the memory's context

    def run(self, steps: int, step_ns: np.ndarray, note_ns: np.ndarray, offset: int,
            sample_ns: np.ndarray | None = None) -> None:
        generator, clock, memory, recent = self.generator, time.perf_counter_ns, self.memory, self.recent
        runner = generator.runner
        blend = memory.blend if memory is not None else 0.0
        for i in range(offset, offset + steps):
            t0 = clock()
            token = generator.sample_next(markov=memory.blended(recent) if memory is not None else None, blend=blend)
            t1 = clock()
            runner.step(token.pitch, token.ioi, token.duration, token.velocity)
            t2 = clock()
            generator.time_beats = 0.0  # polyphony bookkeeping is off in this benchmark
            step_ns[i], note_ns[i] = t2 - t1, t2 - t0
            if sample_ns is not None:
                sample_ns[i] = t1 - t0
            recent.append(token.pitch)
            if len(recent) > 64:
                del recent[:-8]


def _player_memory(model: Path, blend: float) -> PlayerMemory:
    """A memory that learned 200 phrases of 4-16 notes the model played: contexts as a show's would branch."""
    generator, rng = Generator(ModelRunner(model, threads=1), Sampler(99, 1.0, 0.95)), np.random.default_rng(99)
    memory = PlayerMemory(None, blend)
    for _ in range(200):
        for token in generator.generate(int(rng.integers(4, 17))):
            memory.hear(token.pitch)
        memory.end_phrase()
    return memory


class _NumpyStepper:
    """Gives NumpyLSTM the runner interface the generator uses."""

    def __init__(self, path: Path) -> None:
        self.model = NumpyLSTM(path)
        self.logits = None

    def reset(self, state=None) -> None:
        self.model.reset()

    def start(self):
        from realtime.model.tokens import START

        return self.step(START["pitch"], START["ioi"], START["duration"], START["velocity"])

    def step(self, pitch, ioi, duration, velocity):
        self.logits = self.model.step(pitch, ioi, duration, velocity)
        return self.logits


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bach-folk-lstm")
    parser.add_argument("--steps", type=int, default=None, help="chained steps per variant (default 20000, quick 2000)")
    parser.add_argument("--quick", action="store_true", help="2,000 steps per variant")
    parser.add_argument("--rounds", type=int, default=20, help="interleaving rounds")
    parser.add_argument("--json", default="out/bench/model_step.json")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    args = parser.parse_args(argv)
    args.steps = args.steps or (2_000 if args.quick else 20_000)
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    fp32 = resolve_model(args.model)
    int8 = resolve_model(f"{args.model}.int8")
    first = ModelRunner(fp32, threads=1)
    variants = [_Variant("onnxruntime fp32", first, 1),
                _Variant("onnxruntime int8", ModelRunner(int8, threads=1), 1),
                _Variant(BLENDED, ModelRunner(int8, threads=1), 1, _player_memory(int8, 0.5))]
    guided = ModelRunner(int8, threads=1, guidance=GUIDANCE)
    if guided.guidance:  # a model with styles, one named: each note stepped with its unstyled twin in one call
        guided.controls[0, guided.control_index["style_chorale"]] = 1.0
        variants.append(_Variant(f"onnxruntime int8 + style guidance {guided.guidance:g}", guided, 1))
    if first.controls is not None:  # the numpy reference steps notes alone
        print(f"{args.model} hears controls: no numpy reference (it has none)")
    elif weights_path(fp32).exists():
        variants.append(_Variant("numpy reference fp32", _NumpyStepper(weights_path(fp32)), 1))
    times = {v.name: (np.empty(args.steps, np.int64), np.empty(args.steps, np.int64)) for v in variants}
    samples = {v.name: np.empty(args.steps, np.int64) for v in variants}
    for v in variants:  # warm up caches and allocators
        v.run(200, *times[v.name], 0)
    gc.collect()
    gc.freeze()
    chunk = args.steps // args.rounds
    for r in range(args.rounds):
        for v in variants:
            v.run(chunk, *times[v.name], r * chunk, samples[v.name])
    n = chunk * args.rounds
    results = {
        "model": fp32.stem, "steps": n, "threads": 1,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": sys.version.split()[0]},
        "variants": {name: {"step": summary_us(s[:n]), "sample": summary_us(samples[name][:n]),
                            "note": summary_us(t[:n]), "note_cdf_us": cdf_us(t[:n])}
                     for name, (s, t) in times.items()},
        "target": "per generated note p99 <= 150 us",
    }
    results["headline"] = ", ".join(f"{name} note p50 {r['note']['p50_us']:.0f} / p99 {r['note']['p99_us']:.0f} us"
                                    for name, r in results["variants"].items() if name.startswith("onnxruntime"))
    plain, blended = (results["variants"][name]["sample"] for name in ("onnxruntime int8", BLENDED))
    results["blend"] = {"sample_off_us": plain, "sample_on_us": blended,
                        "added_p50_us": round(blended["p50_us"] - plain["p50_us"], 1),
                        "added_p99_us": round(blended["p99_us"] - plain["p99_us"], 1)}
    results["notes"] = [f"the blend (0.5, a memory of 200 phrases) adds {results['blend']['added_p50_us']:.1f} us p50 / "
                        f"{results['blend']['added_p99_us']:.1f} us p99 to choosing a note: sample p50 "
                        f"{plain['p50_us']:.1f} -> {blended['p50_us']:.1f} us, p99 {plain['p99_us']:.1f} -> "
                        f"{blended['p99_us']:.1f} us"]
    base = results["variants"]["onnxruntime fp32"]["note"]["p50_us"]
    print(f"{fp32.stem}: {n} chained steps per variant, one thread, interleaved in {args.rounds} rounds")
    print(f"{'variant':30} {'step p50':>9} {'p99':>7} {'p99.9':>7} | {'sample p50':>10} {'p99':>7} | "
          f"{'note p50':>9} {'p99':>7} {'p99.9':>7} | note p50 vs fp32")
    for name, r in results["variants"].items():
        s, c, t = r["step"], r["sample"], r["note"]
        print(f"{name:30} {s['p50_us']:8.1f}u {s['p99_us']:6.1f}u {s['p99_9_us']:6.1f}u | {c['p50_us']:9.1f}u "
              f"{c['p99_us']:6.1f}u | {t['p50_us']:8.1f}u {t['p99_us']:6.1f}u {t['p99_9_us']:6.1f}u | "
              f"{t['p50_us'] / base:.2f}x")
    print(results["notes"][0])
    write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
