"""`realtime run` as a user runs it: a separate process, played over real OSC on loopback."""

import signal
import socket
import threading
import time

import pytest
from jackclients import run_realtime
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Listener:
    """A python-osc server standing in for Pd or SuperCollider: records the engine's notes."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, tuple]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.events.append((time.monotonic(), address, args)))
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def held(self) -> set:
        held = set()
        for _, address, args in self.events:
            if address == "/note/on" and args[1] > 0:
                held.add((args[0], args[2]))
            elif address in ("/note/on", "/note/off"):
                held.discard((args[0], args[-1]))
        return held

    def ons(self, after: float = 0.0) -> list:
        return [t for t, a, args in self.events if a == "/note/on" and args[1] > 0 and t >= after]


def _phrase(player: SimpleUDPClient, pitches, velocity: int, gap_s: float) -> None:
    """A player's phrase over OSC: each note on, held `gap_s`, then off."""
    for pitch in pitches:
        player.send_message("/note/on", [pitch, velocity])
        time.sleep(gap_s)
        player.send_message("/note/off", [pitch])


def _start(tmp_path, listener, osc_in: int, engine: str = ""):
    """`realtime run` answering over OSC; `engine`: more lines for [engine] (and tables after it, e.g. [model])."""
    patch = tmp_path / "osc.toml"
    patch.write_text(f"""
[engine]
tempo_bpm = 120
{engine}
[continuation]
phrase_end_ms = 300
answer_notes = 40
answer_beats = 40
[midi]
enabled = false
[osc]
port = {osc_in}
out_host = "127.0.0.1"
out_port = {listener.port}
""")
    return run_realtime(patch)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_answers_over_osc_and_stops_with_every_note_off(tmp_path, stop_signal):
    listener, osc_in = Listener(), _free_port()
    proc = _start(tmp_path, listener, osc_in)
    try:
        player = SimpleUDPClient("127.0.0.1", osc_in)
        _phrase(player, (67, 71, 74, 72, 71, 69, 67), 90, 0.12)
        phrase_end = time.monotonic() + 0.3
        deadline = time.monotonic() + 5
        while len(listener.ons()) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(listener.ons()) >= 4, "the engine answered over OSC"
        assert listener.ons()[0] >= phrase_end - 0.02, "not before the phrase-end silence"
        assert listener.held(), "stopped in the middle of the answer, with a note sounding"
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.1)
    assert proc.returncode == 0, err
    assert "all notes off" in out
    assert listener.held() == set(), "every note the engine started was ended"
    listener.server.shutdown()


def test_the_player_cutting_in_silences_the_answer(tmp_path):
    listener, osc_in = Listener(), _free_port()
    proc = _start(tmp_path, listener, osc_in)
    try:
        player = SimpleUDPClient("127.0.0.1", osc_in)
        _phrase(player, (60, 64, 67), 80, 0.1)
        deadline = time.monotonic() + 5
        while len(listener.ons()) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        player.send_message("/note/on", [72, 100])
        cut_in = time.monotonic()
        time.sleep(0.3)
        assert listener.held() == set(), "the answer let go when the player came back"
        assert [t for t in listener.ons(after=cut_in + 0.01)] == [], "and stayed quiet while the player plays"
        player.send_message("/note/off", [72])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    listener.server.shutdown()
