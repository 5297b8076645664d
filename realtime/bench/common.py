"""Pieces the benchmark scripts share: percentile summaries, core pinning, the per-event timing loop.

"Per event" means what the engine does when a note arrives and it must answer: the model hears
the note (one step with carried state), then the next note is sampled from its prediction under
the usual masks, temperature and top-p. Timed as one unit with perf_counter_ns.
"""

from __future__ import annotations

import gc
import json
import os
import time
from pathlib import Path

import numpy as np

from ..model.generator import Generator
from ..model.generator import ModelRunner
from ..model.sampling import Sampler
from ..model.tokens import Token

# Untimed events at the start of every interleaved chunk: after another variant has swept the L3 cache
# (a 2x1024 fp32 graph is 53 MB), the first ~4 events of a 2x1024 int8 graph cost 2-3x its median while
# its 13 MB of weights come back. Interleaving is there to share the machine's noise, not to charge
# each variant for its neighbours' cache traffic.
SETTLE_EVENTS = 10
CDF_POINTS = np.concatenate([np.linspace(0, 0.95, 96), np.linspace(0.951, 1.0, 50)])  # more points in the tail
# a player's line: a G major figure with varied rhythm, cycled (pitch, onset bucket, duration bucket, velocity bucket)
MELODY = [(67, 5, 4, 4), (71, 3, 2, 4), (74, 3, 2, 5), (72, 5, 4, 4), (71, 8, 7, 3), (69, 5, 4, 4),
          (67, 5, 4, 4), (66, 3, 2, 3), (67, 8, 7, 4), (62, 5, 4, 5), (64, 5, 4, 4), (66, 10, 9, 3)]


def summary_us(ns) -> dict:
    """Median, tail and mean of timings given in nanoseconds, in microseconds."""
    a = np.asarray(ns, dtype=np.float64)
    if len(a) == 0:
        return {"n": 0}
    p50, p99, p999 = np.percentile(a, [50, 99, 99.9]) / 1000
    return {"p50_us": round(float(p50), 2), "p99_us": round(float(p99), 2), "p99_9_us": round(float(p999), 2),
            "mean_us": round(float(a.mean()) / 1000, 2), "max_us": round(float(a.max()) / 1000, 2), "n": int(len(a))}


def cdf_us(ns) -> list[float]:
    """The timings' quantiles at CDF_POINTS (microseconds): enough to draw a CDF without every sample."""
    return np.round(np.quantile(np.asarray(ns, dtype=np.float64), CDF_POINTS) / 1000, 2).tolist()


def ratio(slow: dict, fast: dict) -> dict:
    """How many times faster `fast` is than `slow`, at the median and at p99."""
    return {"p50": round(slow["p50_us"] / fast["p50_us"], 2), "p99": round(slow["p99_us"] / fast["p99_us"], 2)}


def pin_to_one_core() -> int | None:
    """Keep this process on one core (the last) so the scheduler does not move it mid-measurement."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {core})
    return core


def cache_dir(json_path: str | Path) -> Path:
    """Where slow-to-build benchmark artefacts live: $REALTIME_BENCH_CACHE, else cache/ beside the JSON."""
    root = os.environ.get("REALTIME_BENCH_CACHE")
    path = Path(root) if root else Path(json_path).parent / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def quiet_gc() -> None:
    """Collect once and freeze what exists, so the collector does not run inside timed loops."""
    gc.collect()
    gc.freeze()


class EngineEvents:
    """One model answering a player note by note; `run` times each heard-note-plus-next-note event."""

    def __init__(self, name: str, model: str | Path, seed: int = 1, temperature: float = 0.9, top_p: float = 0.92) -> None:
        self.name = name
        self.runner = ModelRunner(model, threads=1)
        self.generator = Generator(self.runner, Sampler(seed, temperature, top_p))
        self.generator.reset()
        self._i = 0

    def run(self, n: int, out: np.ndarray, offset: int = 0) -> Token:
        """Time n events into out[offset:offset+n] (ns); returns the last note sampled."""
        generator, runner, clock = self.generator, self.runner, time.perf_counter_ns
        token = None
        for k in range(offset, offset + n):
            pitch, ioi, duration, velocity = MELODY[self._i % len(MELODY)]
            self._i += 1
            t0 = clock()
            runner.step(pitch, ioi, duration, velocity)
            token = generator.sample_next()
            out[k] = clock() - t0
        return token


def write_json(results: dict, path: str | Path) -> Path:
    """Write a script's results where `--json` says (folders made as needed) and say so."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return out
