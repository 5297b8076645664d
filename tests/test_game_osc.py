"""The game OSC API over real UDP on loopback (python-osc and liblo's oscsend), with the real clock.

What is checked is musical time, not speed: the beat a state change or stinger landed on, taken
from the deadlines the output thread sent notes at.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from conftest import require_tools
from pythonosc.udp_client import SimpleUDPClient

from realtime.app import LiveEngine
from realtime.clock import SystemClock
from realtime.engine.gameosc import register_game_api
from realtime.io.osc import OscInput
from realtime.model.modelfile import models_dir
from realtime.patch import compile_patch, load_patch
from realtime.patchports import MemoryPorts

@pytest.fixture
def needs_oscsend() -> None:
    require_tools("oscsend", package="liblo-tools")


def wait_until(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


@pytest.fixture
def live():
    """A game session on the real clock, built as `realtime run` builds one: OSC in on a free port, notes
    into a memory output."""
    ports = MemoryPorts(osc=True)
    session = LiveEngine(load_patch(models_dir().parent / "patches" / "game.toml"), SystemClock(), ports)
    sent: list[tuple[int, object]] = []
    session.scheduler.on_sent = lambda message, deadline, at: sent.append((deadline, message))
    session.start()
    rig = type("Live", (), {"mode": session.mode, "osc": ports.osc, "sent": sent, "out": ports.recorder,
                            "clock": session.clock, "port": ports.osc.address[1],
                            "lookahead_ns": session.mode.lookahead_ns})
    yield rig
    session.stop()
    assert ports.held_at_close == set()  # stopping leaves every note off


def oscsend(port: int, address: str, types: str, *values) -> None:
    subprocess.run(["oscsend", "127.0.0.1", str(port), address, types, *map(str, values)], check=True, timeout=5)


@pytest.mark.usefixtures("needs_oscsend")
def test_oscsend_state_change_lands_on_the_next_bar_line(live):
    tempo = live.mode.tempo
    time.sleep(0.3)
    sent_at = live.clock.now_ns()
    oscsend(live.port, "/game/state", "s", "combat")
    assert wait_until(lambda: any(t[0] == "combat" for t in live.mode.transitions))
    name, bar, bar_ns = live.mode.transitions[-1]
    assert bar % 4 == 0  # a bar line (4/4)
    # the first bar line after the message arrived plus the lookahead: not earlier, not a bar later
    arrival_beat = bar - (bar_ns - sent_at - live.lookahead_ns) / (60e9 / 84)
    assert bar - 4 < arrival_beat <= bar
    assert wait_until(lambda: any(t >= bar_ns for t, m in live.sent if m.velocity))
    first_new = min(t for t, m in live.sent if m.velocity and t >= bar_ns)
    assert first_new == bar_ns and tempo.beat_at(first_new) == pytest.approx(bar, abs=1e-6)
    assert not [m for t, m in live.sent if m.velocity and t > bar_ns - 1 and t < bar_ns]


@pytest.mark.usefixtures("needs_oscsend")
def test_oscsend_event_plays_the_stinger_on_the_next_beat(live):
    time.sleep(0.2)
    oscsend(live.port, "/game/event", "s", "hit")
    assert wait_until(lambda: len([m for _, m in live.sent if m.channel == 9 and m.velocity]) == 4)
    name, beat, beat_ns = live.mode.stingers[-1]
    assert name == "hit" and beat == int(beat)
    onsets = [t for t, m in live.sent if m.channel == 9 and m.velocity]
    assert onsets[0] == beat_ns == live.mode.tempo.ns_at(beat)


def test_python_osc_params_tempo_and_rejections(live):
    client = SimpleUDPClient("127.0.0.1", live.port)
    client.send_message("/game/param", ["intensity", 0.8])
    client.send_message("/transport/tempo", [140.0])
    assert wait_until(lambda: abs(live.mode.params["intensity"].target - 0.8) < 1e-6 and live.mode.tempo.tempo_bpm == 140.0)
    transitions = len(live.mode.transitions)
    client.send_message("/game/param", ["loudness", 0.5])  # unknown name
    client.send_message("/game/state", ["boss"])  # unknown state
    client.send_message("/game/param", ["intensity", 7.0])  # out of range
    client.send_message("/transport/tempo", [1000.0])  # out of range
    assert wait_until(lambda: sum(live.osc.drops.values()) == 4), live.osc.drops
    assert live.osc.drops == {"unknown-name": 2, "value": 1, "range": 1}
    warnings = live.osc.take_warnings()
    assert len(warnings) == 3 and all("\n" not in w for w in warnings)  # one line per kind
    unknown = next(w for w in warnings if "unknown-name" in w)
    assert "loudness" in unknown and "intensity, danger" in unknown
    time.sleep(0.1)
    assert abs(live.mode.params["intensity"].target - 0.8) < 1e-6 and live.mode.tempo.tempo_bpm == 140.0
    assert len(live.mode.transitions) == transitions  # no effect at all


@pytest.mark.usefixtures("needs_oscsend")
def test_oscsend_transport_stop_silences_and_start_restarts_at_beat_zero(live):
    time.sleep(0.3)
    oscsend(live.port, "/transport/stop", "")
    assert wait_until(lambda: not live.mode.running and live.out.held == set())
    started = len(live.mode.transitions)
    oscsend(live.port, "/transport/start", "")
    # the engine thread sets `running` first and logs the restart's section after the voices are reset
    assert wait_until(lambda: live.mode.running and len(live.mode.transitions) > started)
    start_ns = live.mode.transitions[started][2]
    assert live.mode.transitions[started][1] == 0.0 and live.mode.tempo.beat_at(start_ns) == 0.0
    assert wait_until(lambda: any(t >= start_ns and m.velocity for t, m in live.sent))
    assert min(t for t, m in live.sent if t >= start_ns and m.velocity) == start_ns


def test_scripted_game_client_walks_the_four_states(live):
    from realtime.gameclient import run_client

    log = run_client("127.0.0.1", live.port, seconds_per_scene=0.25, rate_hz=40, printer=lambda line: None)
    states = [args[0] for _, address, args in log if address == "/game/state"]
    assert states == ["calm", "tense", "combat", "victory"]
    assert wait_until(lambda: live.mode.pending is None and live.mode.state.name == "victory", 10)
    assert [t[0] for t in live.mode.transitions if t[0] != "calm"][-1] == "victory"
    assert all(bar % 4 == 0 for _, bar, _ in live.mode.transitions)
    assert len(live.mode.stingers) == 5 and live.osc.drops == {}


def test_pure_data_patch_sends_the_same_messages(tmp_path):
    """patches/game.pd run headless: its receives drive the same API a game uses."""
    require_tools("pd", package="puredata-core")
    from realtime.engine.game import GameMessage

    got = []
    osc = OscInput(SystemClock(), "127.0.0.1", 0)
    game = compile_patch(load_patch(models_dir().parent / "patches" / "game.toml")).game
    register_game_api(osc, game, lambda m, t: got.append(m))
    sends = [f"connect-to {osc.address[1]}", "state combat", "param intensity 0.5", "event hit", "tempo 128",
             "stop bang", "start bang"]
    args = ["pd", "-nogui", "-noaudio", "-nomidi", "-open", str(models_dir().parent / "patches" / "game.pd")]
    for message in sends:
        args += ["-send", message]
    pd = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: len(got) == 6, 10)
    finally:
        pd.terminate()
        pd.wait(timeout=5)
        osc.close()
    assert got == [GameMessage("state", "combat"), GameMessage("param", "intensity", 0.5), GameMessage("event", "hit"),
                   GameMessage("tempo", value=128.0), GameMessage("stop"), GameMessage("start")]
    assert osc.drops == {}
