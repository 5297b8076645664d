"""`realtime calibrate` finds a device's latency through a loopback and writes it into the patch."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from jackclients import DelayLine

from realtime.calibrate import write_latency
from realtime.errors import PatchError
from realtime.patch import load_patch

ROOT = Path(__file__).resolve().parents[1]
PATCH = """# my rig: the synth echoes MIDI thru
[engine]
tempo_bpm = 120   # keep this comment

[midi]
backend = "jack"
output = "delay:in"    # the device
input = "delay:out"

[osc]
enabled = false
"""


def test_calibrate_recovers_a_known_delay_and_writes_it(jack256, tmp_path: Path) -> None:
    device = DelayLine("delay", delay_ms=12.0)  # a JACK client delaying MIDI by 12 ms, to the frame
    patch = tmp_path / "rig.toml"
    patch.write_text(PATCH)
    try:
        done = subprocess.run([sys.executable, "-m", "realtime.cli", "calibrate", str(patch), "--trials", "12",
                               "--write"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        device.close()
    assert done.returncode == 0, done.stderr
    assert "12 of 12 notes heard back" in done.stdout
    measured = load_patch(patch).midi.latency_ms
    assert measured == pytest.approx(12.0, abs=1.0), done.stdout
    text = patch.read_text()
    assert "# keep this comment" in text and "# the device" in text, "the patch keeps its comments"
    assert tomllib.loads(text)["midi"]["output"] == "delay:in"


def test_calibrate_says_when_nothing_comes_back(jack256, tmp_path: Path) -> None:
    device = DelayLine("delay", delay_ms=12.0, mute=True)  # connected, but nothing comes back
    patch = tmp_path / "rig.toml"
    patch.write_text(PATCH)
    try:
        done = subprocess.run([sys.executable, "-m", "realtime.cli", "calibrate", str(patch), "--trials", "4"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        device.close()
    assert done.returncode == 2
    assert "calibrate heard nothing back" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_write_latency_replaces_the_value_and_keeps_comments(tmp_path: Path) -> None:
    patch = tmp_path / "p.toml"
    patch.write_text("[midi]\nlatency_ms = 3.0   # old figure\nbackend = \"jack\"\n[osc]\nenabled = false\n")
    write_latency(patch, 7.25)
    assert patch.read_text().splitlines()[1] == "latency_ms = 7.25   # old figure"
    assert load_patch(patch).midi.latency_ms == 7.25
    bare = tmp_path / "bare.toml"
    bare.write_text("[engine]\ntempo_bpm = 90\n")
    write_latency(bare, 4.0)
    assert load_patch(bare).midi.latency_ms == 4.0
    with pytest.raises(PatchError, match=r"\[midi\] latency_ms must be between 0 and 500"):
        write_latency(bare, 900.0)
    assert load_patch(bare).midi.latency_ms == 4.0, "a value the patch refuses is never written"
