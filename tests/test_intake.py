"""The OSC intake process and the kernel's sender filter, over real UDP on loopback.

127.0.0.2 is a second loopback address (all of 127/8 is loopback on Linux): the foreign sender.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from pathlib import Path

from realtime.clock import SystemClock
from realtime.engine.game import GameMessage
from realtime.events import NamedControl, NoteMessage
from realtime.io.intake import OscIntake
from realtime.io.osccodec import encode_message
from realtime.io.sockfilter import attach_allowlist
from realtime.model.modelfile import models_dir
from realtime.patch import compile_patch, load_patch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="socket filters and prctl need Linux")


def wait_until(predicate, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


@pytest.fixture
def foreign():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.2", 0))
    yield sock
    sock.close()


@pytest.fixture
def home():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield sock
    sock.close()


def _kernel_drops(sock: socket.socket) -> int:
    return struct.unpack("=9I", sock.getsockopt(socket.SOL_SOCKET, 55, 36))[8]  # SO_MEMINFO, drops last


def test_the_kernel_drops_a_foreign_sender_before_user_space(foreign, home):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listening:
        listening.bind(("127.0.0.1", 0))
        attach_allowlist(listening, ["127.0.0.1"])
        for i in range(200):
            foreign.sendto(b"/note/on\x00\x00\x00\x00" + bytes([i]), listening.getsockname())
        for i in range(3):
            home.sendto(f"allowed {i}".encode(), listening.getsockname())
        time.sleep(0.05)
        listening.setblocking(False)
        readable = []
        while True:
            try:
                readable.append(listening.recvfrom(100))
            except BlockingIOError:
                break
        assert [data for data, _ in readable] == [b"allowed 0", b"allowed 1", b"allowed 2"]
        assert {sender[0] for _, sender in readable} == {"127.0.0.1"}
        assert _kernel_drops(listening) == 200, "each foreign datagram was dropped (and counted) in the kernel"


@pytest.fixture
def intake():
    port = OscIntake(SystemClock(), port=0)
    yield port
    port.close()


def test_notes_and_controls_cross_the_ring_and_drops_come_back(intake, home, foreign):
    heard = []
    intake.set_listener(lambda event, at_ns: heard.append((event, at_ns)))
    before = time.monotonic_ns()
    for _ in range(50):
        foreign.sendto(encode_message("/note/on", 70, 100), intake.address)
    home.sendto(encode_message("/note/on", 60, 90, 2), intake.address)
    home.sendto(encode_message("/control/temperature", 0.75), intake.address)
    home.sendto(b"junk", intake.address)
    home.sendto(b"junk again", intake.address)
    home.sendto(encode_message("/note/off", 60, 2), intake.address)
    assert wait_until(lambda: len(heard) == 3)
    assert [event for event, _ in heard] == [NoteMessage(60, 90, 2), NamedControl("temperature", 0.75),
                                             NoteMessage(60, 0, 2)]
    assert all(before <= at_ns <= time.monotonic_ns() for _, at_ns in heard), "stamped on the shared clock"
    assert wait_until(lambda: intake.drops == {"malformed": 2, "kernel": 50})
    assert intake.received == 5, "the foreign datagrams never reached the intake process"
    warnings = intake.take_warnings()
    assert len(warnings) == 2 and any("first 'malformed' drop" in w for w in warnings)
    assert any("allow list ['127.0.0.1']" in w for w in warnings)
    assert intake.take_warnings() == []


def test_a_stalled_engine_fills_the_ring_and_the_rest_are_counted(home):
    intake = OscIntake(SystemClock(), port=0, capacity=16)
    release, heard = threading.Event(), []

    def stalled(event, at_ns):
        release.wait(5)
        heard.append(event)

    intake.set_listener(stalled)
    try:
        for pitch in range(40):
            home.sendto(encode_message("/note/on", pitch, 100), intake.address)
            time.sleep(0.001)
        assert wait_until(lambda: intake.drops.get("ring-full", 0) >= 40 - 16 - 1)
        release.set()
        assert wait_until(lambda: len(heard) + intake.drops["ring-full"] == 40)
        assert [e.pitch for e in heard] == sorted(e.pitch for e in heard), "what got through kept its order"
        assert any("ring to it is full" in w for w in intake.take_warnings())
    finally:
        release.set()
        intake.close()


def test_the_game_api_is_checked_in_the_intake_process(home):
    patch = load_patch(models_dir().parent / "patches" / "game.toml")
    intake, posted = OscIntake(SystemClock(), port=0), []
    try:
        intake.register_game(compile_patch(patch).game, lambda message, at_ns: posted.append(message), GameMessage)
        home.sendto(encode_message("/game/param", "danger", 0.5), intake.address)
        home.sendto(b"/game/state\x00,s\x00\x00nowhere\x00", intake.address)
        home.sendto(b"/game/event\x00,s\x00\x00hit\x00", intake.address)
        assert wait_until(lambda: len(posted) == 2)
        assert posted == [GameMessage("param", "danger", 0.5), GameMessage("event", "hit", 0.0)]
        assert wait_until(lambda: intake.drops == {"unknown-name": 1})
    finally:
        intake.close()


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_the_intake_process_dies_with_its_parent():
    code = ("import sys, time\nfrom realtime.clock import SystemClock\nfrom realtime.io.intake import OscIntake\n"
            "port = OscIntake(SystemClock(), port=0)\nprint(port._process.pid, flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # running
        parent.send_signal(signal.SIGKILL)  # no chance to close anything
        parent.wait()

        def gone() -> bool:
            try:
                with open(f"/proc/{child}/stat") as f:
                    return f.read().split(")")[-1].split()[0] == "Z"  # a zombie until init reaps it
            except FileNotFoundError:
                return True
        assert wait_until(gone), "the intake process ended with the engine"
    finally:
        if parent.poll() is None:
            parent.kill()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_realtime_run_without_real_time_priority_warns_once_and_leaves_no_intake(tmp_path, home):
    """`realtime run` refused SCHED_FIFO (CAP_SYS_NICE dropped): one warning line, still answers, and
    after the stop its intake process is gone."""
    osc_in = _free_port()
    patch = tmp_path / "osc.toml"
    patch.write_text(f"[midi]\nenabled = false\n[osc]\nport = {osc_in}\n")
    proc = subprocess.Popen(["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice", sys.executable,
                             "-m", "realtime.cli", "run", str(patch)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "running" in proc.stdout.readline()
        children = [pid for task in os.listdir(f"/proc/{proc.pid}/task")
                    for pid in open(f"/proc/{proc.pid}/task/{task}/children").read().split()
                    if b"realtime.io.intake" in open(f"/proc/{pid}/cmdline", "rb").read()]
        assert len(children) == 1, "the intake process runs beside the engine"
        home.sendto(encode_message("/note/on", 60, 90), ("127.0.0.1", osc_in))
        time.sleep(0.6)  # a status line or two
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "all notes off" in out
    fifo_lines = [line for line in err.splitlines() if "SCHED_FIFO" in line]
    assert len(fifo_lines) == 1, err
    assert "engine thread" in fifo_lines[0] and "OSC intake" in fifo_lines[0]
    assert "in 1 " in out, "the note crossed the ring"
    assert not os.path.exists(f"/proc/{children[0]}"), "the engine waited for its intake process to end"
