"""Hostile OSC at 50,000 messages a second while a player plays: what is dropped, what gets through, how late.

The engine runs as `realtime run` runs it (LiveEngine: OSC in on loopback, OSC out, the engine and
output threads) in this process. Two helper processes (this file with --role) share the clock
(CLOCK_MONOTONIC is system-wide): a flooder that sends a mix of hostile datagrams (random bytes, wrong
type tags, NaN and infinities, huge strings and blobs, unknown addresses, bundles nested too deep, a
foreign sender) and valid control spam, paced in 1 ms batches; and a player whose note-ons each carry a
unique (pitch, velocity), so each is matched to the moment the engine's mode heard it.

Figures per phase (quiet, then flood, then loaded: the same flood with two CPU burners beside the
engine, started and stopped by this script; `--no-loaded` skips it): messages sent, dropped by kind, handled; legitimate note-on
latency (player's send -> the engine hears it) p50/p99 against the patch budget; lateness and
deadline misses of the engine's answer notes.

    python benchmarks/flood.py [--quick] [--seconds 10] [--rate 50000] [--no-loaded] [--json out/bench/flood.json]
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
from pathlib import Path

import numpy as np

from realtime.bench.common import write_json
from realtime.bench.load import BURNERS, cpu_burners, load_average
from realtime.io.osccodec import encode_bundle, encode_message

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MS = 3.0


def hostile_datagrams(seed: int = 0) -> list[bytes]:
    """One of each kind of hostile or useless datagram, plus valid control spam (legal, but a flood)."""
    rng = random.Random(seed)
    deep = encode_message("/note/on", 60, 100)
    for _ in range(12):
        deep = encode_bundle(deep)
    return [
        bytes(rng.randrange(256) for _ in range(48)),
        encode_message("/note/on", "C4", "loud"),
        encode_message("/note/on", 200, 100),
        encode_message("/control/temperature", float("nan")),
        encode_message("/control/temperature", float("inf"), tags="d"),
        encode_message("/" + "x" * 4000, "y" * 4000),
        encode_message("/note/on", 8000).replace(b",i\x00\x00", b",b\x00\x00") + bytes(8000),  # a blob
        encode_message("/nowhere/at/all", 1),
        encode_message("/game/guess", 60),
        deep,
        encode_message("/no?t?", 1).replace(b"?", b"\xff"),  # not UTF-8
        encode_message("/control/temperature", 0.5),  # valid: goes to the engine's inbox
    ]


# --- helper processes -------------------------------------------------------------------------------

def _wait_until(t_ns: int) -> None:
    while True:
        left = t_ns - time.monotonic_ns()
        if left <= 0:
            return
        time.sleep(min(left, 2_000_000) / 1e9)


def flooder(port: int, rate: int, start_ns: int, seconds: float, foreign_share: float = 0.1) -> dict:
    """Send `rate` datagrams a second in 1 ms batches; a share of them from 127.0.0.2 (not allowed)."""
    home = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    foreign.bind(("127.0.0.2", 0))
    kinds = hostile_datagrams()
    target = ("127.0.0.1", port)
    sent = sent_foreign = errors = 0
    every = max(1, round(1 / foreign_share)) if foreign_share else 0
    _wait_until(start_ns)
    end_ns = start_ns + int(seconds * 1e9)
    batch_ns = 1_000_000
    next_ns = start_ns
    while next_ns < end_ns:
        due = int((next_ns - start_ns + batch_ns) / 1e9 * rate)
        while sent + sent_foreign < due:
            n = sent + sent_foreign
            try:
                if every and n % every == 0:
                    foreign.sendto(kinds[n % len(kinds)], target)
                    sent_foreign += 1
                else:
                    home.sendto(kinds[n % len(kinds)], target)
                    sent += 1
            except OSError:
                errors += 1
                sent += 1
        next_ns += batch_ns
        _wait_until(next_ns)
    return {"sent": sent + sent_foreign, "sent_from_foreign_host": sent_foreign, "send_errors": errors,
            "achieved_rate": round((sent + sent_foreign) / seconds)}


def player(port: int, start_ns: int, seconds: float) -> dict:
    """Phrases of five notes (100 ms each), then 700 ms of silence for the engine to answer in."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", port)
    sends = []  # (index, send ns)
    index = 0
    _wait_until(start_ns)
    end_ns = start_ns + int(seconds * 1e9)
    t = start_ns + 50_370_000  # off the flooder's millisecond grid, as a real player would be
    while t + 1_300_000_000 < end_ns:
        for _ in range(5):
            pitch, velocity = 48 + index % 24, 20 + (index // 24) % 100
            _wait_until(t)
            sends.append((index, time.monotonic_ns()))
            sock.sendto(encode_message("/note/on", pitch, velocity), target)
            _wait_until(t + 90_000_000)
            sock.sendto(encode_message("/note/off", pitch), target)
            index += 1
            t += 100_000_000
        t += 700_000_000
    return {"sends": sends}


def _run_role(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["flooder", "player"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--start-ns", type=int)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args(argv)
    if args.role == "flooder":
        result = flooder(args.port, args.rate, args.start_ns, args.seconds)
    else:
        result = player(args.port, args.start_ns, args.seconds)
    print(json.dumps(result), flush=True)


# --- the engine side ----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _summary_ms(values_ns) -> dict:
    a = np.asarray(values_ns, dtype=np.float64) / 1e6
    if len(a) == 0:
        return {"n": 0}
    p50, p99 = np.percentile(a, [50, 99])
    return {"n": int(len(a)), "p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3),
            "max_ms": round(float(a.max()), 3)}


def _held_at(sink: socket.socket) -> set:
    """(channel, pitch) still sounding at the synth's end: every note-on and note-off the engine sent."""
    from realtime.io.osccodec import decode_packet

    held = set()
    sink.setblocking(False)
    while True:
        try:
            data = sink.recv(65535)
        except BlockingIOError:
            return held
        for address, _, values in decode_packet(data):
            if address == "/note/on" and values[1] > 0:
                held.add((values[2], values[0]))
            elif address in ("/note/on", "/note/off"):
                held.discard((values[-1], values[0]))


def run_phase(seconds: float, rate: int) -> dict:
    """One engine, one player, and (rate > 0) one flooder, for `seconds`."""
    from realtime.app import LiveEngine
    from realtime.patch import parse_patch

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # stands in for a synth; read after the stop
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sink.bind(("127.0.0.1", 0))
    osc_port = _free_port()
    patch = parse_patch({"engine": {"budget_ms": BUDGET_MS, "tempo_bpm": 120},
                         "continuation": {"phrase_end_ms": 300, "answer_notes": 8, "answer_beats": 4},
                         "midi": {"enabled": False},
                         "osc": {"port": osc_port, "out_host": "127.0.0.1", "out_port": sink.getsockname()[1]}},
                        "flood-bench")
    live = LiveEngine(patch)
    heard = {}  # (pitch, velocity) of a note-on -> ns the mode heard it
    hear = live.mode.on_message

    def spy(message, at_ns):
        if getattr(message, "velocity", 0):
            heard.setdefault((message.pitch, message.velocity), time.monotonic_ns())
        hear(message, at_ns)

    live.mode.on_message = spy
    live.start()
    start_ns = time.monotonic_ns() + 1_000_000_000  # time for the helpers to start
    helper = [sys.executable, str(Path(__file__).resolve()), "--port", str(osc_port), "--start-ns", str(start_ns),
              "--seconds", str(seconds)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = {"player": subprocess.Popen(helper + ["--role", "player"], stdout=subprocess.PIPE, text=True, env=env)}
    if rate:
        procs["flooder"] = subprocess.Popen(helper + ["--role", "flooder", "--rate", str(rate)],
                                            stdout=subprocess.PIPE, text=True, env=env)
    results = {name: json.loads(proc.communicate(timeout=seconds + 60)[0]) for name, proc in procs.items()}
    time.sleep(0.3)  # the last datagrams land
    drops = dict(live.osc_input.drops)
    scheduler = live.scheduler
    n = min(scheduler.sent_count, len(scheduler.lateness_ns))
    lateness = scheduler.lateness_ns[:n].copy()
    inbox_drops = live.engine.inbox_drops
    delivered, received = live.osc_input.delivered, live.osc_input.received
    live.stop()
    held = _held_at(sink)
    sink.close()

    sends = results["player"]["sends"]
    latencies, lost = [], 0
    for index, sent_ns in sends:
        key = (48 + index % 24, 20 + (index // 24) % 100)
        if key in heard:
            latencies.append(heard[key] - sent_ns)
        else:
            lost += 1
    legit = 2 * len(sends)  # note-ons and note-offs
    flood_sent = results.get("flooder", {}).get("sent", 0)
    return {
        "seconds": seconds,
        "flood_rate_asked": rate,
        "flood": results.get("flooder", {}),
        "sent": flood_sent + legit,
        "received_by_socket": received,
        "dropped": {**drops, "engine-inbox": inbox_drops},
        "dropped_total": sum(drops.values()) + inbox_drops,
        "handled": delivered - inbox_drops,  # events the engine took in (legitimate notes and valid controls)
        "legit_note_ons_sent": len(sends),
        "legit_note_ons_lost": lost,
        "legit_note_latency": _summary_ms(latencies),
        "answer_notes_sent": int(n),
        "answer_lateness": _summary_ms(lateness),
        "deadline_misses": int(scheduler.late_count),
        "held_after_stop": len(held),
        "budget_ms": BUDGET_MS,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per phase instead of 10")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rate", type=int, default=50_000, help="hostile datagrams per second")
    parser.add_argument("--json", default=str(ROOT / "out" / "bench" / "flood.json"))
    parser.add_argument("--no-loaded", action="store_true", help=f"skip the loaded row (flood + {BURNERS} CPU burners)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    load_before = os.getloadavg()
    phases = {"quiet": run_phase(seconds, 0), "flood": run_phase(seconds, args.rate)}
    if not args.no_loaded:
        with cpu_burners(BURNERS):  # the loaded row: the same flood with two CPU burners beside the engine
            phases["loaded"] = run_phase(seconds, args.rate)
            phases["loaded"]["load_average_during"] = load_average()
        phases["loaded"]["cpu_burners"] = BURNERS
    report = {"benchmark": "flood", "cpus": os.cpu_count(), "phases": phases}
    report["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(f"machine: {os.cpu_count()} CPUs, load average {report['load_average_before_after'][0]} before, "
          f"{report['load_average_before_after'][1]} after (other processes share these CPUs)")
    print(f"{'phase':6} {'sent':>8} {'dropped':>8} {'handled':>8} {'legit lost':>10} {'legit p50':>10} "
          f"{'legit p99':>10} {'answer p99':>10} {'misses':>6} {'held':>4}")
    for name, phase in report["phases"].items():
        legit, late = phase["legit_note_latency"], phase["answer_lateness"]
        print(f"{name:6} {phase['sent']:8d} {phase['dropped_total']:8d} {phase['handled']:8d} "
              f"{phase['legit_note_ons_lost']:>4d}/{phase['legit_note_ons_sent']:<5d} "
              f"{legit.get('p50_ms', float('nan')):8.3f}ms {legit.get('p99_ms', float('nan')):8.3f}ms "
              f"{late.get('p99_ms', float('nan')):8.3f}ms {phase['deadline_misses']:6d} {phase['held_after_stop']:4d}")
    flood = report["phases"].get("loaded", report["phases"]["flood"])
    report["headline"] = (f"{flood['sent']} sent at {flood['flood'].get('achieved_rate', 0)}/s: {flood['dropped_total']} "
                          f"dropped, {flood['handled']} handled; legitimate note-ons lost "
                          f"{flood['legit_note_ons_lost']}/{flood['legit_note_ons_sent']}, p99 "
                          f"{flood['legit_note_latency'].get('p99_ms')} ms (budget {BUDGET_MS} ms); "
                          f"{flood['deadline_misses']} deadline misses")
    for name in ("flood", "loaded"):
        if name in report["phases"]:
            phase = report["phases"][name]
            print(f"{name}: achieved {phase['flood'].get('achieved_rate', 0)} datagrams/s; dropped by kind: "
                  f"{phase['dropped']}; legitimate note-ons p99 {phase['legit_note_latency'].get('p99_ms')} ms "
                  f"(budget {BUDGET_MS} ms)")
    if "loaded" in report["phases"]:
        print(f"loaded: {BURNERS} CPU burners beside the engine, load average {report['phases']['loaded']['load_average_during']}"
              " at the end of the phase")
    write_json(report, args.json)
    return report


if __name__ == "__main__":
    if "--role" in sys.argv:
        _run_role(sys.argv[1:])
    else:
        main(sys.argv[1:])
