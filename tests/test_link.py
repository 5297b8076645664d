"""Ableton Link between processes on this machine: the same tempo and beat phase, tempo changes followed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib

import pytest
from jackclients import ROOT, wait_for

pytest.importorskip("aalink")


def peer(*flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "realtime.link", *flags], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)


def lines(proc: subprocess.Popen) -> list[dict]:
    out, _ = proc.communicate(timeout=30)
    return [json.loads(line) for line in out.splitlines()]


def test_two_peers_agree_on_tempo_and_beat_phase_within_a_millisecond() -> None:
    a = peer("--tempo", "120", "--seconds", "4")
    b = peer("--tempo", "90", "--seconds", "4")
    ours, theirs = lines(a), lines(b)
    joined = [s for s in theirs if s["peers"] == 1 and s["ns"] > theirs[0]["ns"] + 1.5e9]
    assert joined, "the peers found each other"
    worst_ms = 0.0
    for snap in joined:
        other = min(ours, key=lambda s: abs(s["ns"] - snap["ns"]))
        assert other["tempo"] == pytest.approx(snap["tempo"], abs=1e-3), "one tempo (Link keeps microseconds a beat)"
        beat_there = other["beat"] + (snap["ns"] - other["ns"]) * other["tempo"] / 60e9
        phase = (snap["beat"] - beat_there + 2) % 4 - 2  # the shared grid agrees modulo the quantum
        worst_ms = max(worst_ms, abs(phase) * 60000 / snap["tempo"])
    assert worst_ms < 1.0, f"beat phase differs by {worst_ms:.3f} ms"


def test_a_tempo_change_on_a_peer_reaches_the_game_engine_within_a_beat() -> None:
    from realtime.app import LiveEngine
    from realtime.link import LinkSync, follow_link
    from realtime.patch import parse_patch

    raw = tomllib.loads((ROOT / "patches" / "game.toml").read_text())
    raw["link"] = {"enabled": True}
    raw["midi"] = {"enabled": False}
    raw["osc"] = raw.get("osc", {}) | {"port": 9473}
    raw.setdefault("synth", {})["kind"] = "none"
    patch = parse_patch(raw, "game+link.toml")
    live = LiveEngine(patch)
    link = LinkSync(patch.engine.tempo_bpm, patch.link.quantum)
    follow_link(live, link)
    other = peer("--tempo", str(patch.engine.tempo_bpm), "--seconds", "4", "--set-tempo-after", "2",
                 "--new-tempo", "133")
    try:
        live.start()
        assert wait_for(lambda: live.mode.tempo.tempo_bpm == pytest.approx(133, abs=1e-3), 5.0, 0.001)
        reached_ns = time.monotonic_ns()
    finally:
        live.stop()
        link.close()
        sent = lines(other)
    proposed_ns = next(s["proposed_ns"] for s in sent if "proposed_ns" in s)
    assert (reached_ns - proposed_ns) / 1e9 < 60 / 133, "within a beat"
    now = time.monotonic_ns()
    shared = link.beat_at(now)
    assert abs(live.mode.tempo.beat_at(now) - shared) * 60000 / 133 < 1.0, "on the shared grid"


def test_a_peer_starting_the_session_starts_the_game_transport() -> None:
    from realtime.app import LiveEngine
    from realtime.link import LinkSync, follow_link
    from realtime.patch import parse_patch

    raw = tomllib.loads((ROOT / "patches" / "game.toml").read_text())
    raw["link"] = {"enabled": True}
    raw["midi"] = {"enabled": False}
    raw["osc"] = raw.get("osc", {}) | {"port": 9474}
    raw["game"]["autostart"] = False
    raw.setdefault("synth", {})["kind"] = "none"
    patch = parse_patch(raw, "game+link.toml")
    live = LiveEngine(patch)
    link = LinkSync(patch.engine.tempo_bpm, patch.link.quantum)
    follow_link(live, link)
    other = peer("--seconds", "3", "--play-after", "1.5")
    try:
        live.start()
        time.sleep(1.0)
        assert not live.mode.running, "nobody has started the session yet"
        assert wait_for(lambda: live.mode.running, 4.0), "a peer pressed play: the game's transport runs"
    finally:
        live.stop()
        link.close()
        lines(other)
