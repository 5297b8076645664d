"""Does the game steer the music? Intensity sweep, key constraint, OSC response time, voices per core.

1. Intensity sweep: `intensity` held at 10 levels (0 to 1) in one section of patches/game.toml; the
   music is generated for a fixed stretch of musical time at each (on a fake clock, so the figures do
   not depend on machine load); Spearman rank correlation of intensity with note density (note-ons
   per beat, all voices) and with mean velocity. Several seeds per level.
2. In-key ratio: the share of voice notes (stingers excluded) whose pitch class is in the section's
   key, over the whole sweep (the key is a hard mask, so anything under 100% is a bug).
3. OSC -> first changed note: the real engine (real clock, output thread, OSC on loopback); while
   it plays, `/game/param intensity` jumps; the time from the send to the output sending the first
   note chosen after the message was heard (p50/p99 over trials).
4. Voices within the budget on one core: N voices in one batched model, every voice on a 16th-note
   grid at 120 BPM (8 notes a second each); each grid step is one engine pass (sample every voice,
   one batched model call). A count of voices passes when the pass's p99 fits the patch's budget and
   8 passes a second fit in one core.

    python benchmarks/game_response.py [--quick] [--json out/bench/game_response.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.bench.common import write_json  # noqa: E402
from realtime.clock import FakeClock, SystemClock  # noqa: E402
from realtime.app import LiveEngine  # noqa: E402
from realtime.engine.voices import VoiceBank  # noqa: E402
from realtime.io.osccodec import encode_message  # noqa: E402
from realtime.model.generator import ModelRunner  # noqa: E402
from realtime.model.sampling import key_pitch_classes  # noqa: E402
from realtime.patch import load_patch  # noqa: E402
from realtime.patchports import MemoryPorts  # noqa: E402

PATCH = ROOT / "patches" / "game.toml"
STINGER_CHANNELS = None  # filled from the patch


def spearman(x, y) -> float:
    """Rank correlation (average ranks for ties)."""
    def ranks(a):
        a = np.asarray(a, dtype=np.float64)
        order = a.argsort()
        r = np.empty(len(a))
        r[order] = np.arange(len(a))
        for value in np.unique(a):  # ties share their mean rank
            r[a == value] = r[a == value].mean()
        return r
    rx, ry = ranks(x), ranks(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def _patch_at(patch, state: str, intensity: float, seed: int):
    game = patch.game
    params = tuple(dataclasses.replace(p, initial=intensity) if p.name == "intensity" else p for p in game.params)
    game = dataclasses.replace(game, params=params, initial_state=state, smoothing_ms=0.0)
    return dataclasses.replace(patch, game=game, engine=dataclasses.replace(patch.engine, seed=seed))


def run_fake(patch, bars: int) -> tuple[list, object]:
    """Generate `bars` bars on a fake clock; returns (deadline, message) of every note sent, and the mode."""
    live = LiveEngine(patch, FakeClock(0), MemoryPorts())  # built as `realtime run` builds it; no threads
    live.engine.poll_ns = 5_000_000  # a tick at least every 5 ms
    sent: list = []
    live.scheduler.on_sent = lambda message, deadline, at: sent.append((deadline, message))
    mode = live.mode
    mode.start(0)
    live.engine.loop(mode.tempo.ns_at(bars * patch.game.beats_per_bar))  # the engine's own loop, time jumping
    live.stop()
    return sent, mode


def intensity_sweep(patch, levels: int, seeds: int, bars: int, state: str) -> dict:
    stinger_channels = {e.channel - 1 for e in patch.game.events}
    key = key_pitch_classes(next(s.key for s in patch.game.states if s.name == state))
    rows, in_key, total = [], 0, 0
    for level in np.linspace(0.0, 1.0, levels):
        densities, velocities = [], []
        for seed in range(seeds):
            sent, mode = run_fake(_patch_at(patch, state, float(level), seed), bars)
            skip_ns = mode.tempo.ns_at(patch.game.beats_per_bar)  # the first bar settles the layers
            ons = [m for t, m in sent if m.velocity and t >= skip_ns and m.channel not in stinger_channels]
            beats = (bars - 1) * patch.game.beats_per_bar
            densities.append(len(ons) / beats)
            velocities.append(float(np.mean([m.velocity for m in ons])) if ons else 0.0)
            in_key += sum(m.pitch % 12 in key for m in ons)
            total += len(ons)
        rows.append({"intensity": round(float(level), 3), "notes_per_beat": round(float(np.mean(densities)), 3),
                     "mean_velocity": round(float(np.mean(velocities)), 2)})
    levels_ = [r["intensity"] for r in rows]
    return {"state": state, "bars": bars, "seeds": seeds, "levels": rows,
            "spearman_density": round(spearman(levels_, [r["notes_per_beat"] for r in rows]), 4),
            "spearman_velocity": round(spearman(levels_, [r["mean_velocity"] for r in rows]), 4),
            "in_key_ratio": in_key / total if total else None, "in_key_notes": total, "key": str(sorted(key))}


def osc_response(patch, trials: int) -> dict:
    """Real engine on the real clock: send /game/param over UDP, wait for the first note chosen after it."""
    ports = MemoryPorts(osc=True)
    live = LiveEngine(patch, SystemClock(), ports)  # started below as `realtime run` starts it
    clock, mode, scheduler, osc = live.clock, live.mode, live.scheduler, ports.osc
    pushes: list = []  # (push time, deadline, message)
    original_push = scheduler.push

    def push(message, at_ns):
        pushes.append((clock.now_ns(), at_ns, message))
        original_push(message, at_ns)
    scheduler.push = push
    sent: dict = {}
    scheduler.on_sent = lambda message, deadline, at: sent.setdefault((deadline, id(message)), at)
    live.start()  # the output thread, the engine thread, and the patch's autostart
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    response_ms, next_any_ms = [], []
    try:
        time.sleep(0.5)
        for trial in range(trials):
            value = 1.0 if trial % 2 == 0 else 0.1
            time.sleep(0.35 + 0.05 * (trial % 5))  # land at varied places in the beat
            t_send = clock.now_ns()
            sender.sendto(encode_message("/game/param", "intensity", value), osc.address)
            deadline = time.monotonic() + 3.0
            first = None
            while time.monotonic() < deadline and first is None:
                time.sleep(0.002)
                after = [(d, m) for pushed, d, m in list(pushes) if pushed > t_send and m.velocity]
                handled = abs(mode.params["intensity"].target - value) < 1e-6  # OSC floats are 32-bit
                if handled and after:
                    d, m = min(after, key=lambda x: x[0])
                    at = sent.get((d, id(m)))
                    if at is not None:
                        first = at
            if first is not None:
                response_ms.append((first - t_send) / 1e6)
                any_next = min((at for (d, _), at in list(sent.items()) if d > t_send), default=None)
                if any_next is not None:
                    next_any_ms.append((any_next - t_send) / 1e6)
    finally:
        live.stop()
        sender.close()
    a = np.asarray(response_ms)
    return {"trials": trials, "answered": int(len(a)), "lookahead_ms": patch.game.lookahead_ms,
            "p50_ms": round(float(np.percentile(a, 50)), 2) if len(a) else None,
            "p99_ms": round(float(np.percentile(a, 99)), 2) if len(a) else None,
            "max_ms": round(float(a.max()), 2) if len(a) else None,
            "late_notes": int(scheduler.late_count),
            "next_note_at_all_p50_ms": round(float(np.percentile(next_any_ms, 50)), 2) if next_any_ms else None}


def voices_within_budget(model: str, budget_ms: float, counts: list[int], passes: int, seed: int = 0) -> dict:
    """One engine pass per 16th at 120 BPM: every voice samples a note, then one batched model call."""
    import gc

    gc.collect()
    gc.freeze()  # as the live engine does after start-up
    rows = []
    for n in counts:
        runner = ModelRunner(model, batch=n)
        bank = VoiceBank(runner, seed, temperature=0.9, top_p=0.92)
        rng = np.random.default_rng(seed)
        for v in range(n):
            allowed = np.zeros(128, dtype=bool)
            allowed[36 + (v % 4) * 12: 60 + (v % 4) * 12] = True
            bank.set_pitch_mask(v, allowed)
        times = np.empty(passes, dtype=np.int64)
        beat = np.zeros(n)
        for p in range(passes + 50):
            t0 = time.perf_counter_ns()
            for v in range(n):
                note = bank.sample(v, beat[v], 3)  # fixed 1/4-beat onset: a 16th at 120 BPM is 1/8 s
                bank.accept(v, note, beat[v] + 0.25, beat[v] + 0.5)
                beat[v] += 0.25
            if runner.controls is not None:
                runner.controls[:, 0] = 4.0 + rng.random(n)  # controls move every pass, as parameters may
            bank.step()
            if p >= 50:
                times[p - 50] = time.perf_counter_ns() - t0
        p50, p99 = np.percentile(times, [50, 99]) / 1e6
        core_share = 8 * float(times.mean()) / 1e9  # 8 passes a second
        rows.append({"voices": n, "pass_p50_ms": round(float(p50), 3), "pass_p99_ms": round(float(p99), 3),
                     "per_note_us": round(float(times.mean()) / n / 1e3, 2), "core_share_at_8_notes_s": round(core_share, 4),
                     "within_budget": bool(p99 <= budget_ms and core_share < 1.0)})
        print(f"  {n:4d} voices: pass p50 {p50:.3f} ms, p99 {p99:.3f} ms, {rows[-1]['per_note_us']:.1f} us/note, "
              f"{100 * core_share:.1f}% of a core at 8 notes/s each -> {'ok' if rows[-1]['within_budget'] else 'over'}",
              flush=True)
    fitting = 0
    for r in rows:  # the largest count such that it and every smaller count tried fit
        if not r["within_budget"]:
            break
        fitting = r["voices"]
    return {"model": model, "budget_ms": budget_ms, "notes_per_second_per_voice": 8, "rows": rows,
            "max_voices_within_budget": fitting}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds, bars, trials and voice counts")
    parser.add_argument("--patch", default=str(PATCH))
    parser.add_argument("--state", default="tense", help="the section the sweep plays in")
    parser.add_argument("--json", default=str(ROOT / "out" / "bench" / "game_response.json"))
    args = parser.parse_args(argv)
    patch = load_patch(args.patch)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target says
    report = {"benchmark": "game_response", "model": patch.model.name, "quick": args.quick}
    print("intensity sweep (fake clock, musical time):", flush=True)
    sweep = intensity_sweep(patch, 10, 2 if args.quick else 6, 8 if args.quick else 16, args.state)
    for row in sweep["levels"]:
        print(f"  intensity {row['intensity']:.2f}: {row['notes_per_beat']:.2f} notes/beat, "
              f"mean velocity {row['mean_velocity']:.1f}")
    print(f"  Spearman intensity vs density {sweep['spearman_density']:.3f}, vs velocity {sweep['spearman_velocity']:.3f}; "
          f"in key {100 * sweep['in_key_ratio']:.2f}% of {sweep['in_key_notes']} notes", flush=True)
    report["sweep"] = sweep
    print("OSC /game/param -> first changed note (real clock, loopback UDP):", flush=True)
    response = osc_response(patch, 10 if args.quick else 40)
    print(f"  p50 {response['p50_ms']} ms, p99 {response['p99_ms']} ms over {response['answered']}/{response['trials']} "
          f"(lookahead {response['lookahead_ms']} ms; the next note-on of any kind came after "
          f"{response['next_note_at_all_p50_ms']} ms p50; late notes {response['late_notes']})", flush=True)
    report["osc_to_changed_note"] = response
    print(f"voices within the {patch.engine.budget_ms} ms budget on one core, 8 notes/s each, batched:", flush=True)
    counts = [16, 64, 128] if args.quick else [8, 16, 32, 64, 96, 128, 192, 256]
    report["voices"] = voices_within_budget(patch.model.name, patch.engine.budget_ms, counts, 200 if args.quick else 1000)
    print(f"  -> {report['voices']['max_voices_within_budget']} voices", flush=True)
    write_json(report, args.json)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
