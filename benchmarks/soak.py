"""Soak: a long real-time performance, a scripted player and a scripted game, RSS and deadline misses.

Parts (each runs `--minutes` long, one after the other, in this process as `realtime run` runs it):
- duet: the call-and-response patch over OSC; a scripted player (a helper process) plays seeded
  phrases, cuts into some answers, turns `/control/temperature`, and sends a trickle of bad datagrams;
- game: patches/game.toml (its conditioned model when shipped, else the duet model) driven by a scripted
  game over OSC: `/game/param` every 2 s, `/game/event` every 5 s, `/game/state` every 15 s,
  `/transport/tempo` and a stop/start every minute.
Both send their notes as OSC to a socket standing in for a synth. RSS is sampled every few seconds;
growth is measured from the end of the first minute (10% of a short run), after start-up and warm-up
allocations have settled. Misses are notes sent later than the patch's budget.

    python benchmarks/soak.py [--quick] [--minutes 10] [--mode duet|game|both] [--json out/bench/soak.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from realtime.bench.common import write_json
from realtime.io.osccodec import encode_message

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


# --- drivers (helper processes) ---------------------------------------------------------------------

def _sleep_until(t: float) -> None:
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)


def drive_player(port: int, seconds: float, seed: int = 0) -> dict:
    """Seeded phrases of 3-9 notes in a key; a third of the answers interrupted; controls; some junk."""
    rng = random.Random(seed)
    sock, target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), ("127.0.0.1", port)
    counts = {"notes": 0, "controls": 0, "junk": 0, "interruptions": 0}
    scale = [0, 2, 4, 5, 7, 9, 11]
    end = time.monotonic() + seconds
    next_control = time.monotonic() + 1.0
    while time.monotonic() < end - 3:
        tonic = rng.choice([55, 57, 60, 62, 64])
        for _ in range(rng.randint(3, 9)):
            pitch = tonic + rng.choice(scale) + 12 * rng.choice([0, 0, 1])
            sock.sendto(encode_message("/note/on", pitch, rng.randint(50, 110)), target)
            time.sleep(rng.choice([0.12, 0.18, 0.25, 0.35]))
            sock.sendto(encode_message("/note/off", pitch), target)
            counts["notes"] += 1
            time.sleep(rng.choice([0.0, 0.02, 0.05]))
        if time.monotonic() > next_control:
            sock.sendto(encode_message("/control/temperature", rng.uniform(0.0, 1.0)), target)
            counts["controls"] += 1
            next_control += 2.0
        junk = [b"\x00junk", encode_message("/note/on", 300, 1), encode_message("/nowhere", 1)]
        sock.sendto(rng.choice(junk), target)
        counts["junk"] += 1
        # listen to the answer: wait it out, or cut in after a while
        if rng.random() < 0.33:
            time.sleep(rng.uniform(0.6, 1.2))
            counts["interruptions"] += 1
        else:
            time.sleep(rng.uniform(2.5, 4.0))
    return counts


def drive_game(port: int, seconds: float, seed: int = 0) -> dict:
    rng = random.Random(seed)
    sock, target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), ("127.0.0.1", port)
    counts = {"params": 0, "events": 0, "states": 0, "tempo": 0, "stops": 0}
    states, events = ["calm", "tense", "combat", "victory"], ["hit", "pickup"]
    start = time.monotonic()
    t = start
    while t - start < seconds - 1:
        t += 1.0
        _sleep_until(t)
        second = int(t - start)
        if second % 2 == 0:
            sock.sendto(encode_message("/game/param", "intensity", rng.uniform(0.0, 1.0)), target)
            sock.sendto(encode_message("/game/param", "danger", rng.uniform(0.0, 1.0)), target)
            counts["params"] += 2
        if second % 5 == 0:
            sock.sendto(encode_message("/game/event", rng.choice(events)), target)
            counts["events"] += 1
        if second % 15 == 0:
            sock.sendto(encode_message("/game/state", states[(second // 15) % len(states)]), target)
            counts["states"] += 1
        if second % 60 == 30:
            sock.sendto(encode_message("/transport/tempo", rng.uniform(80.0, 140.0)), target)
            counts["tempo"] += 1
        if second % 60 == 45:
            sock.sendto(encode_message("/transport/stop"), target)
            time.sleep(0.5)
            sock.sendto(encode_message("/transport/start"), target)
            counts["stops"] += 1
    return counts


# --- the engine side ----------------------------------------------------------------------------------

def _patch(part: str, sink_port: int):
    from realtime.model.modelfile import models_dir
    from realtime.patch import load_patch, parse_patch

    if part == "duet":
        return parse_patch({"engine": {"budget_ms": 3.0, "tempo_bpm": 110},
                            "model": {"temperature": 0.9, "top_p": 0.92, "lowest": 36, "highest": 96,
                                      "max_polyphony": 4},
                            "continuation": {"phrase_end_ms": 500, "answer_notes": 16, "answer_beats": 8},
                            "midi": {"enabled": False},
                            "osc": {"port": 0, "out_host": "127.0.0.1", "out_port": sink_port},
                            "controls": [{"source": "osc:temperature", "target": "temperature", "min": 0.6,
                                          "max": 1.4}]}, "soak-duet")
    patch = load_patch(ROOT / "patches" / "game.toml")
    model = patch.model.name if (models_dir() / f"{patch.model.name}.onnx").exists() else "bach-folk-lstm.int8"
    return replace(patch, model=replace(patch.model, name=model), midi=replace(patch.midi, enabled=False),
                   osc=replace(patch.osc, port=0, out_host="127.0.0.1", out_port=sink_port))


def run_part(part: str, seconds: float, sample_s: float) -> dict:
    from realtime.app import LiveEngine

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a synth that never reads: sends still cost
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    patch = _patch(part, sink.getsockname()[1])
    live = LiveEngine(patch)
    live.start()
    port = live.osc_input.address[1]
    driver = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--role", part, "--port", str(port),
                               "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    started = time.monotonic()
    samples, warnings, received = [], [], 0
    while time.monotonic() - started < seconds:
        time.sleep(sample_s)
        while True:  # drain the sink like a synth would, so its buffer does not decide what is sent
            try:
                sink.recv(65535)
                received += 1
            except BlockingIOError:
                break
        warnings += live.supervise()
        samples.append((round(time.monotonic() - started, 1), rss_bytes()))
    drove = json.loads(driver.communicate(timeout=60)[0] or "{}")
    s = live.scheduler
    n = min(s.sent_count, len(s.lateness_ns))
    lateness = s.lateness_ns[:n] / 1e6
    status = live.status()
    figures = {"notes_out": int(s.sent_count), "deadline_misses": int(s.late_count),
               "lateness_p99_ms": round(float(np.percentile(lateness, 99)), 3) if n else None,
               "worst_late_ms": round(s.worst_late_ns / 1e6, 3), "dropped": live.dropped(),
               "budget_ms": patch.engine.budget_ms, "model": patch.model.name}
    mode = live.mode
    for name in ("phrases", "interruptions", "fallback_notes", "model_errors", "behind", "notes_timed_out"):
        if hasattr(mode, name):
            figures[name] = int(getattr(mode, name))
    live.stop()
    sink.close()
    settle = max(1, min(len(samples) - 1, int(round(60 / sample_s)) if seconds >= 300 else len(samples) // 10))
    base = samples[settle - 1][1] if samples else 0
    growth = samples[-1][1] - base if samples else 0
    return {"part": part, "seconds": seconds, "driver": drove, **figures,
            "rss_start_mb": round(samples[0][1] / 2**20, 2) if samples else None,
            "rss_settled_mb": round(base / 2**20, 2), "rss_end_mb": round(samples[-1][1] / 2**20, 2) if samples else None,
            "rss_growth_mb": round(growth / 2**20, 3),
            "rss_max_mb": round(max(b for _, b in samples) / 2**20, 2) if samples else None,
            "rss_over_time": [(t, round(b / 2**20, 2)) for t, b in samples],
            "status": status, "warnings": warnings[:20]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s per part instead of --minutes")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--mode", choices=["duet", "game", "both"], default="both")
    parser.add_argument("--json", default=str(ROOT / "out" / "bench" / "soak.json"))
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else args.minutes * 60
    sample_s = 1.0 if seconds < 120 else 5.0
    parts = ["duet", "game"] if args.mode == "both" else [args.mode]
    report = {"benchmark": "soak", "cpus": os.cpu_count(), "parts": {}, "load_average_before": os.getloadavg()[0]}
    for part in parts:
        result = run_part(part, seconds, sample_s)
        report["parts"][part] = result
        print(f"{part}: {seconds / 60:.1f} min, model {result['model']}; driver sent {result['driver']}")
        print(f"  notes out {result['notes_out']}, deadline misses {result['deadline_misses']} at "
              f"{result['budget_ms']} ms (lateness p99 {result['lateness_p99_ms']} ms, worst {result['worst_late_ms']} ms), "
              f"dropped input {result['dropped']}")
        extra = {k: result[k] for k in ("phrases", "interruptions", "fallback_notes", "model_errors") if k in result}
        if extra:
            print(f"  {extra}")
        print(f"  RSS start {result['rss_start_mb']} MB, settled {result['rss_settled_mb']} MB, end "
              f"{result['rss_end_mb']} MB: growth {result['rss_growth_mb']} MB after settling (max {result['rss_max_mb']} MB)")
        step = max(1, len(result["rss_over_time"]) // 10)
        print("  RSS over time (s, MB): " + ", ".join(f"{t:g}:{mb}" for t, mb in result["rss_over_time"][::step]))
    report["headline"] = "; ".join(
        f"{part} {r['seconds'] / 60:.1f} min: RSS growth {r['rss_growth_mb']} MB, {r['deadline_misses']} misses of "
        f"{r['notes_out']} notes at {r['budget_ms']} ms" for part, r in report["parts"].items())
    print(report["headline"])
    write_json(report, args.json)
    return report


if __name__ == "__main__":
    if "--role" in sys.argv:
        role = argparse.ArgumentParser()
        role.add_argument("--role", choices=["duet", "game"])
        role.add_argument("--port", type=int)
        role.add_argument("--seconds", type=float)
        a = role.parse_args()
        print(json.dumps((drive_player if a.role == "duet" else drive_game)(a.port, a.seconds)))
    else:
        main(sys.argv[1:])
