"""The audio device going away under the built-in synth (the JACK server PortAudio plays on dies): the
synth says so once, drops notes instead of queueing them, closes at once, and the process still exits.

PortAudio is left wedged by a dead JACK server (every call on the stream blocks), so the scenario runs
in a child process: the test process's own PortAudio stays usable for the tests after this one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_module, require_tools

require_module("sounddevice", "pip install sounddevice")
from jackserver import JackServer  # noqa: E402

SCENARIO = r"""
import os, sys, time
sys.path.insert(0, {tests!r})
from jackserver import JackServer
server = JackServer(prefix="rt-audio-loss").start()
os.environ.update(server.environ())
import sounddevice as sd
while sd._initialized:
    sd._terminate()
sd._initialize()  # PortAudio sees JACK only if the server runs when it initialises
from realtime.events import NoteMessage
from realtime.io.livesynth import LiveSynth
device = next(i for i, d in enumerate(sd.query_devices())
              if "JACK" in sd.query_hostapis(d["hostapi"])["name"] and d["max_output_channels"] > 0)
synth = LiveSynth().open(device=device)
synth.send(NoteMessage(60, 100))
time.sleep(0.3)
print("before:", synth.check(), flush=True)
server.stop()
message = None
deadline = time.monotonic() + 5
while message is None and time.monotonic() < deadline:
    time.sleep(0.05)
    message = synth.check()
print("lost:", message, flush=True)
print("again:", synth.check(), flush=True)
for i in range(1000):
    synth.send(NoteMessage(60 + i % 12, 100 * (i % 2)))
synth.all_notes_off()
print("queued:", len(synth._pending), "dropped:", synth.dropped, flush=True)
started = time.monotonic()
synth.close()
print(f"closed in {{time.monotonic() - started:.3f}} s", flush=True)
"""


def test_a_lost_audio_device_is_reported_once_and_nothing_hangs(tmp_path):
    require_tools("jackd", "jack_wait", package="jackd2")
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO.format(tests=str(Path(__file__).parent)))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in run.stdout.splitlines() if ":" in line}
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert lines["before"] == "None"
    assert "went away" in lines["lost"] and "silent" in lines["lost"], lines
    assert lines["again"] == "None", "said once"
    assert lines["queued"].startswith("0 ") and "dropped: 1000" in run.stdout, "notes dropped, never queued"
    assert "closed in" in run.stdout, "close() returned although PortAudio's stream is wedged"
