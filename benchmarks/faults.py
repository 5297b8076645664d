"""Held notes after each fault: the engine answering over JACK MIDI, a fault in the middle of the answer,
and a JACK MIDI receiver (a synth honouring note-offs, CC120 and CC123) counting what it still holds.

Each scenario runs `realtime run` as a user would (its own process, virtual ports on a private JACK
dummy server), except the model fault, which needs a hand inside the engine (LiveEngine in this
process with its model's step replaced by one that raises). A killed process (SIGKILL) is shown for
contrast: nothing inside the engine can act then; only a receiver-side maximum note length helps.

    python benchmarks/faults.py [--quick] [--json out/bench/faults.json]   (--quick: two faults)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the JACK server and clients the tests use

from jackclients import RUN_PATCH, Keyboard, start_realtime, wait_for  # noqa: E402
from jackclients import Receiver as Synth  # noqa: E402

from realtime.bench.common import write_json  # noqa: E402


def _answering(synth: Synth, keyboard: Keyboard) -> bool:
    keyboard.phrase()
    return wait_for(lambda: len(synth.note_ons()) >= 2 and synth.held(), 5.0)


def _read_until(proc: subprocess.Popen, needle: str, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            return False
        if needle in line:
            return True
    return False


def scenario(name: str, jack, folder: Path) -> dict:
    """Run one fault; returns held notes at the fault moment, after it, and after the final stop."""
    output = "fluid" if name == "synth port vanishes and returns" else ""
    synth = Synth("fluid", virtual=True) if output else Synth()
    proc, patch = start_realtime(folder, *(["--seconds", "2.5"] if name == "stops by itself (--seconds)" else []),
                                 output=output)
    keyboard = Keyboard()
    result = {"fault": name}
    try:
        if not output:
            synth.listen_to("realtime-out")
        keyboard.play_into("realtime-in")
        if not _answering(synth, keyboard):
            return {**result, "error": "the engine did not answer before the fault"}
        result["held_at_fault"] = len(synth.held())
        if name == "player cuts in":
            keyboard.port.send_message([0x90, 60, 100])
            time.sleep(0.3)
            result["held_after"] = len(synth.held())
            keyboard.port.send_message([0x80, 60, 0])
            proc.send_signal(signal.SIGTERM)
        elif name in ("SIGTERM", "SIGINT", "SIGKILL"):
            proc.send_signal(getattr(signal, name))
            if name == "SIGKILL":
                result["remark"] = "nothing inside can act: JACK just removes the port (a receiver's guard helps)"
        elif name == "stops by itself (--seconds)":
            pass
        elif name == "patch reloaded (SIGHUP)":
            patch.write_text(RUN_PATCH.format(output="").replace("tempo_bpm = 120", "tempo_bpm = 90"))
            proc.send_signal(signal.SIGHUP)
            _read_until(proc, "reloaded")
            time.sleep(0.2)
            result["held_after"] = len(synth.held())
            proc.send_signal(signal.SIGTERM)
        elif name == "synth port vanishes and returns":
            synth.close()
            time.sleep(1.2)  # the engine notices within its 0.5 s supervision and plays on into nowhere
            synth = Synth("fluid", virtual=True)
            wait_for(lambda: synth.messages, 3.0)
            time.sleep(0.3)
            panic = any(m[0] & 0xF0 == 0xB0 and m[1] == 123 for m in synth.heard())
            result["remark"] = "the returning synth got note-offs and CC64/120/123/121" if panic else "no panic sent"
            proc.send_signal(signal.SIGTERM)
        elif name == "JACK server dies and returns":
            keyboard.close()
            synth.close()
            jack.stop()
            time.sleep(1.0)
            jack.start()
            time.sleep(2.0)  # the engine reconnects within a few supervision rounds
            synth, keyboard = Synth("synth2"), Keyboard("keys2")
            synth.listen_to("realtime-out")
            keyboard.play_into("realtime-in")
            answers = _answering(synth, keyboard)
            result["remark"] = "reconnected and answers on the new server" if answers else "did not answer again"
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        time.sleep(0.3)
        result["held_after_stop"] = len(synth.held())
        result["exit_code"] = proc.returncode
        return result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for port in (keyboard, synth):
            try:
                port.close()
            except Exception:  # closed by the scenario already
                pass


def model_fault() -> dict:
    """The model raises mid-answer (in-process: the only way to reach inside): the fallback answers."""
    from realtime.app import LiveEngine
    from realtime.patch import parse_patch

    patch = parse_patch({"engine": {"tempo_bpm": 120},
                         "continuation": {"phrase_end_ms": 300, "answer_notes": 40, "answer_beats": 40},
                         "midi": {"backend": "jack"}, "osc": {"enabled": False}}, "faults")
    live = LiveEngine(patch)
    live.start()
    synth, keyboard = Synth(), Keyboard()
    said: list[str] = []
    try:
        synth.listen_to("realtime-out")
        keyboard.play_into("realtime-in")
        _answering(synth, keyboard)

        def broken(notes):
            raise RuntimeError("simulated onnxruntime failure")

        live.generator.runner.step_batch = broken
        before = len(synth.note_ons())
        keyboard.phrase((60, 62, 64))
        wait_for(lambda: len(synth.note_ons()) >= before + 3 and bool(said.extend(live.supervise()) or True), 5.0,
                 step_s=0.02)
        said += live.supervise()
        held_at_fault = len(synth.held())
        live.stop()
        time.sleep(0.3)
        answered = len(synth.note_ons()) >= before + 3
        reported = any("model step failed" in line for line in said)
        return {"fault": "model raises mid-answer", "held_at_fault": held_at_fault,
                "held_after_stop": len(synth.held()),
                "remark": f"fallback answered ({live.mode.fallback_notes} notes)" if answered else "no answer",
                **({"reported": True} if reported else {})}
    finally:
        live.stop()
        synth.close()
        keyboard.close()


FAULTS = ["player cuts in", "stops by itself (--seconds)", "SIGTERM", "SIGINT", "patch reloaded (SIGHUP)",
          "synth port vanishes and returns", "JACK server dies and returns", "SIGKILL"]
QUICK = ["SIGTERM", "synth port vanishes and returns"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two scenarios instead of nine (about 15 s)")
    parser.add_argument("--json", default=str(ROOT / "out" / "bench" / "faults.json"))
    args = parser.parse_args(argv)
    if shutil.which("jackd") is None:
        return {"skipped": "jackd is not installed (Debian jackd2)"}
    import tempfile

    from realtime.bench.jackd import JackServer

    rows = []
    with JackServer() as jack, tempfile.TemporaryDirectory() as folder:
        os.environ.update(jack.environ())
        for name in QUICK if args.quick else FAULTS:
            rows.append(scenario(name, jack, Path(folder)))
        if not args.quick:
            rows.append(model_fault())
    print(f"{'fault (mid-answer)':34} {'held at fault':>13} {'held after':>10} {'held after stop':>15}  remark")
    for row in rows:
        after = row.get("held_after")
        print(f"{row['fault']:34} {row.get('held_at_fault', '-')!s:>13} {'-' if after is None else after!s:>10} "
              f"{row.get('held_after_stop', row.get('error', '-'))!s:>15}  {row.get('remark', '')}")
    stuck = [row["fault"] for row in rows if row["fault"] != "SIGKILL" and row.get("held_after_stop") != 0]
    report = {"benchmark": "faults", "rows": rows,
              "headline": ("no note held after any fault (SIGKILL excepted)" if not stuck
                           else f"notes held after: {', '.join(stuck)}")}
    print(report["headline"])
    write_json(report, args.json)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
