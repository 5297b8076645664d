"""Reaction latency, output jitter and deadline misses, with 0, 1 and 2 CPU-burning neighbours.

Reaction latency: the player's last note-off -> the engine's first answer note-on, minus the
configured phrase-end silence (the engine is asked to answer as soon as that silence has passed).
 - in-process: memory ports, the engine and output threads as `realtime run` runs them. The answer
   is prepared during the silence, so this row is the engine's own punctuality (how exactly the
   output thread keeps a deadline it has known for tens of ms), labelled so in the JSON; beside it,
   "note-off to answer ready": the compute from the player's last note-off until the first answer
   note is chosen and handed to the scheduler (p50/p99). Trials with no answer are counted;
 - through JACK, measured at a receiving JACK client (realtime/bench/receiver.py): the engine runs as
   `realtime run` in its own process on a private JACK dummy server at 64, 256 and 1024 frames, with
   the frame-accurate JACK-Client backend and python-rtmidi side by side, with 0 and 1 burner; this
   script plays at exact frames and stamps what it hears by frame (JACK's own frame times): reaction,
   onset error against the grid the engine schedules on, the engine's misses, unanswered trials.
Jitter: (moment sent - moment scheduled) of every note the engine's output thread sent.
Misses: notes sent later than the patch's budget (3 ms), over a long in-process performance.
Loaded row: two CPU burners while a player plays the real inputs (OSC through the intake process, a
JACK keyboard client through MidiInput, -p 64): note-on sent -> heard by the engine's mode.

    python benchmarks/latency.py [--trials 150] [--minutes 10] [--json out/bench/latency.json]
    python benchmarks/latency.py --loaded-only [--trials 150]  # only the loaded row (needs jackd)
    python benchmarks/latency.py --quick   # 10 trials, no burners, JACK -p 64 only, a 10 s miss run (for `realtime bench --quick`)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from realtime.app import LiveEngine
from realtime.bench.common import write_json
from realtime.bench.receiver import jack_server
from realtime.io.ports import FanOut, MemoryOutput
from realtime.patch import parse_patch
from realtime.patchports import MemoryPorts, PatchPorts

PHRASE_END_MS = 40.0
PHRASE = [(60, 90), (64, 80), (67, 85)]  # three short notes, 30 ms apart
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def burners(n: int):
    """n neighbour processes that spin a CPU each: the load a shared laptop or a game puts on us."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def summary_ms(values_ns) -> dict:
    a = np.asarray(values_ns, dtype=np.float64) / 1e6
    if len(a) == 0:
        return {"n": 0}
    p50, p99 = np.percentile(a, [50, 99])
    return {"n": int(len(a)), "p50_ms": round(p50, 4), "p99_ms": round(p99, 4), "max_ms": round(float(a.max()), 4),
            "mean_ms": round(float(a.mean()), 4)}


def _patch(extra: dict | None = None) -> dict:
    raw = {"engine": {"budget_ms": 3.0, "tempo_bpm": 120},
           "continuation": {"phrase_end_ms": PHRASE_END_MS, "answer_notes": 4, "answer_beats": 2.0},
           "midi": {"enabled": False}, "osc": {"enabled": False}}
    for key, value in (extra or {}).items():
        raw.setdefault(key, {}).update(value)
    return raw


def _recording_live(patch) -> LiveEngine:
    """The live engine with a memory keyboard and a recording output in place of real ports."""
    return LiveEngine(patch, ports=MemoryPorts())


PUNCTUALITY = ("engine punctuality, not a reaction time: the first answer note-on as sent minus the moment the "
               "phrase-end silence ended; the answer is prepared during the silence, so this is how exactly the "
               "output thread keeps a deadline it has known for tens of ms")
ANSWER_READY = ("compute time: the player's last note-off (clock read just before it is handed to the input port) "
                "to the moment the first answer note has been chosen and handed to the scheduler")


def in_process(trials: int) -> dict:
    """Punctuality of the first answer note and note-off -> answer-ready compute, with memory ports and the real threads."""
    live = _recording_live(parse_patch(_patch(), "<latency>"))
    scheduled_ns: list[int] = []  # when each note-on was handed to the scheduler (engine clock)
    push = live.scheduler.push

    def timed_push(message, at_ns: int) -> None:
        if message.is_on:
            scheduled_ns.append(live.clock.now_ns())
        push(message, at_ns)

    live.scheduler.push = timed_push
    punctuality, ready, no_answer = [], [], 0
    live.start()
    try:
        for _ in range(trials):
            sent_before = len(live.ports.recorder.sent)
            for pitch, velocity in PHRASE:
                live.ports.keyboard.play(pitch, velocity)
                time.sleep(0.03)
                scheduled_before = len(scheduled_ns)  # every note-off prepares an answer; the last one counts
                released_ns = live.clock.now_ns()  # the port stamps the note-off just after this
                live.ports.keyboard.play(pitch, 0)
            deadline = time.monotonic() + 1.0
            answered = False
            while time.monotonic() < deadline:
                ons = [t for t, m in live.ports.recorder.sent[sent_before:] if m.is_on]
                if ons:
                    punctuality.append(ons[0] - released_ns - int(PHRASE_END_MS * 1e6))
                    if len(scheduled_ns) > scheduled_before:
                        ready.append(scheduled_ns[scheduled_before] - released_ns)
                    answered = True
                    break
                time.sleep(0.0005)
            no_answer += not answered  # counted, never dropped from the story
            time.sleep(0.15)  # let the short answer finish
    finally:
        live.stop()
    n = min(live.scheduler.sent_count, len(live.scheduler.lateness_ns))
    return {"measures": PUNCTUALITY, "reaction": summary_ms(punctuality),
            "answer_ready": {"measures": ANSWER_READY, **summary_ms(ready)},
            "trials": trials, "no_answer": no_answer,
            "jitter": summary_ms(np.abs(live.scheduler.lateness_ns[:n])),
            "misses": live.scheduler.late_count, "notes_out": live.scheduler.sent_count,
            "raw_reaction_ms": (np.asarray(punctuality) / 1e6).round(4).tolist()}


def long_run(minutes: float) -> dict:
    """A scripted player for `minutes`; deadline misses at a 3 ms budget and jitter of every note."""
    live = _recording_live(parse_patch(_patch({"continuation": {"answer_notes": 16, "answer_beats": 8.0,
                                                                 "phrase_end_ms": 300.0}}), "<soak>"))
    rng = np.random.default_rng(0)
    live.start()
    sent: list[tuple[int, int]] = []  # (deadline, sent) of every note, for the jitter-over-time plot
    engine_on_sent = live.scheduler.on_sent

    def record(message, deadline_ns: int, sent_ns: int) -> None:
        if engine_on_sent is not None:
            engine_on_sent(message, deadline_ns, sent_ns)
        sent.append((deadline_ns, sent_ns))

    live.scheduler.on_sent = record
    started_ns = live.clock.now_ns()
    end = time.monotonic() + minutes * 60
    phrases = 0
    try:
        while time.monotonic() < end:
            for _ in range(int(rng.integers(3, 9))):
                pitch = int(rng.integers(55, 80))
                live.ports.keyboard.play(pitch, int(rng.integers(50, 110)))
                time.sleep(float(rng.choice([0.15, 0.3, 0.45])))
                live.ports.keyboard.play(pitch, 0)
            phrases += 1
            time.sleep(float(rng.uniform(0.5, 4.0)))  # sometimes the answer finishes, sometimes we cut in
    finally:
        live.stop()
    n = min(live.scheduler.sent_count, len(live.scheduler.lateness_ns))
    return {"minutes": minutes, "phrases": phrases, "notes_out": live.scheduler.sent_count,
            "misses": live.scheduler.late_count, "fallback_notes": live.mode.fallback_notes,
            "jitter": summary_ms(np.abs(live.scheduler.lateness_ns[:n])),
            "answer_latency": summary_ms(live.mode.answer_latency_ns),
            "jitter_series": _series(sent, started_ns)}


def _series(sent: list[tuple[int, int]], started_ns: int, points: int = 4000) -> dict:
    """Lateness (sent - scheduled, ms) against seconds into the run, thinned to at most `points` notes."""
    if not sent:
        return {"t_s": [], "late_ms": []}
    a = np.asarray(sent, dtype=np.int64)
    keep = np.unique(np.linspace(0, len(a) - 1, min(points, len(a))).astype(int))
    return {"t_s": ((a[keep, 0] - started_ns) / 1e9).round(3).tolist(),
            "late_ms": ((a[keep, 1] - a[keep, 0]) / 1e6).round(4).tolist()}


# --- through JACK: realtime/bench/receiver.py measures at a receiving JACK client -----------------

JACK_BACKENDS = ("jack", "jack-rtmidi")  # frame-accurate JACK-Client, and python-rtmidi on JACK


def clock_at_the_receiver(period: int, backend: str, seconds: float = 8.0) -> dict:
    from realtime.bench.receiver import clock_and_notes

    return clock_and_notes(period, backend, (ROOT / "patches" / "game.toml").read_text(), seconds)


def through_jack(period: int, trials: int, backend: str) -> dict:
    from realtime.bench.receiver import through_jack as at_the_receiver

    patch = _toml(_patch({"midi": {"enabled": True, "backend": "@BACKEND@"}}))
    return at_the_receiver(period, trials, backend, patch, PHRASE, PHRASE_END_MS, tempo_bpm=120)


# --- the loaded row: real inputs (OSC intake process, JACK MIDI) with two CPU burners -------------

class _RecordedPorts(PatchPorts):
    """The patch's real inputs (OSC in its intake process, JACK MIDI), and a recording output."""

    def open_outputs(self, clock, voices=()) -> FanOut:
        self.recorder = self.add_output(MemoryOutput(clock, "recorder"))
        return FanOut(self.outputs)


def loaded_inputs(trials: int, n_burners: int = 2, period: int = 64) -> dict:
    """How long a player's note-on takes to reach the engine's mode (heard), over OSC and over JACK MIDI
    (the engine's JACK MIDI input, a keyboard client at JACK -p `period`), with `n_burners` CPU burners."""
    import socket

    import rtmidi

    from realtime.io.osccodec import encode_message

    with jack_server(period) as server:
        os.environ["JACK_DEFAULT_SERVER"] = server
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            osc_port = probe.getsockname()[1]
        patch = parse_patch(_patch({"midi": {"enabled": True, "backend": "jack", "client_name": "rt-loaded"},
                                    "osc": {"enabled": True, "port": osc_port}}), "<loaded>")
        live = LiveEngine(patch, ports=_RecordedPorts(patch))
        heard: dict[tuple[int, int], int] = {}
        hear = live.mode.on_message

        def spy(message, at_ns):
            if message.velocity:
                heard.setdefault((message.pitch, message.velocity), time.monotonic_ns())
            hear(message, at_ns)

        live.mode.on_message = spy
        keyboard = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bench-keyboard")
        player = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sends: dict[str, list[tuple[tuple[int, int], int]]] = {"osc": [], "midi": []}
        try:
            live.start()
            ports = keyboard.get_ports()
            keyboard.open_port(next(i for i, n in enumerate(ports) if "rt-loaded" in n))
            time.sleep(0.3)
            with burners(n_burners):
                time.sleep(0.5)  # the burners get going
                for trial in range(trials):
                    for index in range(len(PHRASE)):
                        n = trial * len(PHRASE) + index  # (pitch, velocity) names the note: unique to 6,048
                        pitch, velocity = 36 + (n // 126) % 48, 1 + n % 126
                        source = "osc" if trial % 2 else "midi"
                        sent_ns = time.monotonic_ns()
                        if source == "osc":
                            player.sendto(encode_message("/note/on", pitch, velocity), ("127.0.0.1", osc_port))
                        else:
                            keyboard.send_message([0x90, pitch, velocity])
                        sends[source].append(((pitch, velocity), sent_ns))
                        time.sleep(0.03)
                        if source == "osc":
                            player.sendto(encode_message("/note/off", pitch), ("127.0.0.1", osc_port))
                        else:
                            keyboard.send_message([0x80, pitch, 0])
                        time.sleep(0.01)
                    time.sleep(0.25)  # an answer (phrase end 40 ms) plays out
            time.sleep(0.2)
        finally:
            player.close()
            keyboard.close_port()
            live.stop()
    result = {"burners": n_burners, "jack_period_frames": period, "misses": live.scheduler.late_count,
              "notes_out": live.scheduler.sent_count, "held_after_stop": len(live.ports.recorder.held)}
    for source, items in sends.items():
        latencies = [heard[key] - at for key, at in items if key in heard]
        result[source] = {"heard": summary_ms(latencies), "sent": len(items), "lost": len(items) - len(latencies)}
    return result


def _toml(raw: dict) -> str:
    lines = []
    for section, table in raw.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value) if not isinstance(value, bool) else str(value).lower()}")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 4.5))
    FigureCanvasAgg(fig)
    ax, onsets = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for label, run in results["runs"].items():
        errors = np.sort(run.get("raw_onset_error_ms", []))
        if len(errors):
            onsets.plot(errors, np.linspace(0, 1, len(errors)), label=label)
        raw = np.sort(run["raw_reaction_ms"])
        if len(raw):
            ax.plot(raw, np.linspace(0, 1, len(raw)), label=label)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("reaction latency beyond the phrase-end silence (ms); JACK rows at the receiving client")
    ax.set_ylabel("fraction of trials")
    ax.set_title("realtime: input note-off -> first answer note, CDF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    onsets.set_xscale("symlog", linthresh=0.01)
    onsets.set_xlabel("answer onset error against the engine's 1/24-beat grid, at the receiving JACK client (ms)")
    onsets.set_title("what a listener hears: onset timing error, CDF")
    onsets.grid(alpha=0.3)
    if onsets.lines:
        onsets.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _headline(results: dict) -> str:
    """One line for `realtime bench`'s summary."""
    parts = []
    for label, run in results["runs"].items():
        if not (label.endswith(", 0 burners") and run["reaction"].get("n")):
            continue
        if "answer_ready" in run:  # in-process: punctuality, and the compute that precedes it
            a = run["answer_ready"]
            parts.append(f"{label} p50 {run['reaction']['p50_ms']:.3f} / p99 {run['reaction']['p99_ms']:.3f} ms, "
                         f"note-off -> answer ready p50 {a.get('p50_ms', float('nan')):.2f} / p99 "
                         f"{a.get('p99_ms', float('nan')):.2f} ms, {run['no_answer']} of {run['trials']} unanswered")
        else:
            e = run.get("onset_error", {})
            parts.append(f"{label} at the receiver: reaction p50 {run['reaction']['p50_ms']:.2f} / p99 "
                         f"{run['reaction']['p99_ms']:.2f} ms, onset error p99 {e.get('p99_ms', float('nan')):.3f} ms")
    lr = results["long_run"]
    parts.append(f"{lr['minutes']:.1f} min run: {lr['misses']} misses of {lr['notes_out']} notes, "
                 f"jitter p99 {lr['jitter'].get('p99_ms', float('nan')):.3f} ms")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the deadline-miss run")
    parser.add_argument("--burners", default="0,1,2")
    parser.add_argument("--periods", default="64,256,1024")
    parser.add_argument("--jack-trials", type=int, default=30, help="trials per JACK row (each ~1.5 s)")
    parser.add_argument("--json", default="out/bench/latency.json")
    parser.add_argument("--quick", action="store_true",
                        help="10 trials, no burners, JACK at -p 256 only, a 10 s miss run (explicit options still win)")
    parser.add_argument("--no-loaded", action="store_true", help="skip the loaded row (real inputs, 2 CPU burners)")
    parser.add_argument("--loaded-only", action="store_true", help="only the loaded row")
    args = parser.parse_args(argv)
    if args.loaded_only:
        return _loaded_row(args, {"phrase_end_ms": PHRASE_END_MS, "budget_ms": 3.0, "runs": {}, "notes": []})
    if args.quick:  # quick values only where the user left the default
        for name, full, quick in (("trials", 150, 10), ("minutes", 10.0, 1 / 6), ("burners", "0,1,2", "0"),
                                 ("periods", "64,256,1024", "256"), ("jack_trials", 30, 6)):
            if getattr(args, name) == full:
                setattr(args, name, quick)
    have_jack = shutil.which("jackd") is not None
    results: dict = {"phrase_end_ms": PHRASE_END_MS, "budget_ms": 3.0, "runs": {}, "notes": []}
    rows, jack_rows = [], []
    burner_counts = [int(b) for b in args.burners.split(",")]
    for n in burner_counts:
        with burners(n):
            run = in_process(args.trials)
            results["runs"][f"in-process punctuality, {n} burners"] = run
            rows.append((f"in-process punctuality, {n} burners", run["reaction"], run["jitter"], run["misses"], 0.3))
            for period in [int(p) for p in args.periods.split(",") if p] if have_jack and n <= 1 else []:
                for backend in JACK_BACKENDS:
                    label = f"JACK -p {period} {backend}, {n} burners"
                    try:
                        jack = through_jack(period, args.jack_trials, backend)
                    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
                        results["notes"].append(f"{label} failed: {str(err).splitlines()[0][:200]}")
                        continue
                    results["runs"][label] = jack
                    jack_rows.append((label, jack))
                    if period >= 256:  # the dummy driver keeps poor time at 64: clock judged at 256/1024
                        try:
                            jack["clock"] = clock_at_the_receiver(period, backend)
                        except (RuntimeError, OSError, subprocess.SubprocessError) as err:
                            results["notes"].append(f"{label} clock failed: {str(err).splitlines()[0][:200]}")
    long_burners = min(1, max(burner_counts))  # one neighbour when the run has any, as a shared machine
    with burners(long_burners):
        results["long_run"] = long_run(args.minutes)
        results["long_run"]["burners"] = long_burners
    print(f"{'run':28} {'reaction p50':>13} {'p99':>8} {'max':>8} {'target p99':>10} | {'jitter p99':>10} {'max':>7} | misses")
    for label, r, j, misses, target in rows:
        jit = f"{j['p99_ms']:9.3f}m {j['max_ms']:6.3f}m" if j else " " * 18
        print(f"{label:28} {r['p50_ms']:12.3f}m {r['p99_ms']:7.3f}m {r['max_ms']:7.3f}m {target:9.3f}m | {jit} | "
              f"{'' if misses is None else misses}")
    for label, run in results["runs"].items():
        if "answer_ready" in run:
            a = run["answer_ready"]
            print(f"{label}: note-off -> answer ready (compute) p50 {a.get('p50_ms', float('nan')):.3f} ms, "
                  f"p99 {a.get('p99_ms', float('nan')):.3f} ms; {run['no_answer']} of {run['trials']} trials had no answer")
    print("in-process rows: " + PUNCTUALITY)
    print(f"\nat a receiving JACK client: {'run':34} {'reaction p50':>12} {'p99':>7} | {'onset spread p50':>15} {'p99':>7} "
          f"{'max':>7} | misses | no answer")
    for label, run in jack_rows:
        r, e = run["reaction"], run["onset_error"]
        if not r.get("n"):
            print(f"{'':28}{label:34} no answers ({run['no_answer']} of {run['trials']})")
            continue
        print(f"{'':28}{label:34} {r['p50_ms']:11.3f}m {r['p99_ms']:6.3f}m | {e.get('p50_ms', float('nan')):14.3f}m "
              f"{e.get('p99_ms', float('nan')):6.3f}m {e.get('max_ms', float('nan')):6.3f}m | {run['misses']} | "
              f"{run['no_answer']} of {run['trials']}")
        c = run.get("clock")
        if c and "pulse_error" in c:
            p, n = c["pulse_error"], c["note_on_error"]
            print(f"{'':28}{'  game clock + notes':34} pulse error p50 {p['p50_ms']:.3f} p99 {p['p99_ms']:.3f} max "
                  f"{p['max_ms']:.3f} ms; note-on vs pulse p99 {n.get('p99_ms', float('nan')):.3f} max "
                  f"{n.get('max_ms', float('nan')):.3f} ms ({c['pulses']} pulses, {c['note_ons']} notes)")
    lr = results["long_run"]
    print(f"long run with {lr['burners']} burner(s): {lr['minutes']:.2f} min, {lr['phrases']} phrases, {lr['notes_out']} messages out, "
          f"{lr['misses']} misses at 3 ms, jitter p99 {lr['jitter']['p99_ms']:.3f} ms max {lr['jitter']['max_ms']:.3f} ms, "
          f"fallback notes {lr['fallback_notes']}")
    if not have_jack:
        results["notes"].append("JACK runs skipped: jackd is not installed (Debian jackd2)")
    elif not args.no_loaded:
        _loaded_row(args, results, write=False)
    for note in results["notes"]:
        print(note)
    results["headline"] = _headline(results)
    out = write_json(results, args.json)
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.png')}")
    return results


def _loaded_row(args, results: dict, write: bool = True) -> dict:
    """Real inputs under two CPU burners: note-on heard p50/p99 over OSC and JACK MIDI, misses, held notes."""
    load_before = os.getloadavg()[0]
    loaded = loaded_inputs(args.trials)
    loaded["load_average_before"] = round(load_before, 2)
    results["loaded"] = loaded
    for source, name in (("osc", "OSC (intake process)"), ("midi", "JACK MIDI -p 64 (MidiInput)")):
        heard = loaded[source]["heard"]
        print(f"loaded, {loaded['burners']} burners, {name}: note-on heard p50 {heard.get('p50_ms', float('nan')):.3f} ms "
              f"p99 {heard.get('p99_ms', float('nan')):.3f} ms max {heard.get('max_ms', float('nan')):.3f} ms, "
              f"lost {loaded[source]['lost']}/{loaded[source]['sent']}")
    print(f"loaded: {loaded['misses']} answer deadline misses of {loaded['notes_out']} notes, "
          f"{loaded['held_after_stop']} held after stop, load average {loaded['load_average_before']} before")
    if write:
        write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
