"""OSC over real UDP on loopback: python-osc and liblo talk to our ports, and bad datagrams bounce off.

Packets come from the public encoder (osccodec.py), itself checked against python-osc's parser in
test_osc_codec.py; malformed ones are cut from its output or written out byte by byte. Every packet
OscOutput sends is parsed back by python-osc's parser and by liblo's oscdump.
"""

from __future__ import annotations

from pathlib import Path

import math
import queue
import random
import socket
import struct
import subprocess
import threading
import time

import pytest
from conftest import require_tools
from pythonosc import osc_message, osc_server
from pythonosc.dispatcher import Dispatcher
from pythonosc.udp_client import SimpleUDPClient

from realtime.clock import SystemClock
from realtime.errors import PortError
from realtime.events import NamedControl, NoteMessage
from realtime.io.osc import OscInput, OscOutput
from realtime.io.oscaddress import AddressSpec, Arg, address_table_markdown
from realtime.io.osccodec import MAX_BUNDLE_DEPTH, encode_bundle, encode_message, ntp_timetag


@pytest.fixture
def needs_liblo() -> None:
    require_tools("oscsend", "oscdump", package="liblo-tools")


# --- OSC bytes: the public encoder, and malformed ones written out ------------------------------

def nested(depth: int, inner: bytes) -> bytes:
    for _ in range(depth):
        inner = encode_bundle(inner)
    return inner


# --- fixtures and waiting -------------------------------------------------------------------------

def wait_until(predicate, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


class Recorder:
    """A listener that keeps (event, arrival ns) from the receive thread."""

    def __init__(self) -> None:
        self.received: list[tuple[object, int]] = []

    def __call__(self, event, arrival_ns: int) -> None:
        self.received.append((event, arrival_ns))

    @property
    def events(self) -> list:
        return [event for event, _ in self.received]

    def wait_for(self, count: int, timeout_s: float = 2.0) -> list:
        assert wait_until(lambda: len(self.received) >= count, timeout_s), f"got {self.events}"
        return self.events


@pytest.fixture
def osc_in():
    port = OscInput(SystemClock(), port=0)
    recorder = Recorder()
    port.set_listener(recorder)
    port.recorder = recorder
    yield port
    port.close()


@pytest.fixture
def raw_sender():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield sock
    sock.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- input ----------------------------------------------------------------------------------------

def test_default_host_is_loopback_and_port_zero_picks_a_free_port(osc_in):
    host, port = osc_in.address
    assert host == "127.0.0.1" and port > 0
    assert osc_in.name == f"osc-in 127.0.0.1:{port}"


def test_python_osc_client_notes_and_controls_arrive_as_events(osc_in):
    client = SimpleUDPClient(*osc_in.address)
    before_ns = time.monotonic_ns()
    client.send_message("/note/on", [60, 100])
    client.send_message("/note/on", [61, 90, 3])
    client.send_message("/note/off", [60])
    client.send_message("/note/off", [61, 3])
    client.send_message("/note/on", [62, 0])  # velocity 0: a note-off
    client.send_message("/note/on", [64.0, 100.0])  # whole-number floats, as TouchOSC sends them
    client.send_message("/control/temperature", 0.8)
    client.send_message("/control/top_p", 1)  # an int is a fine control value
    events = osc_in.recorder.wait_for(8)
    assert events[:6] == [NoteMessage(60, 100, 0), NoteMessage(61, 90, 3), NoteMessage(60, 0, 0),
                          NoteMessage(61, 0, 3), NoteMessage(62, 0, 0), NoteMessage(64, 100, 0)]
    assert events[6].name == "temperature" and events[6].value == pytest.approx(0.8)
    assert events[7] == NamedControl("top_p", 1.0)
    assert all(before_ns <= t <= time.monotonic_ns() for _, t in osc_in.recorder.received)
    assert osc_in.drops == {} and osc_in.take_warnings() == []


@pytest.mark.usefixtures("needs_liblo")
def test_liblo_oscsend_is_understood(osc_in):
    host, port = osc_in.address
    subprocess.run(["oscsend", host, str(port), "/note/on", "iii", "67", "80", "9"], check=True, timeout=5)
    subprocess.run(["oscsend", host, str(port), "/control/tempo_bpm", "f", "96.5"], check=True, timeout=5)
    subprocess.run(["oscsend", host, str(port), "/note/off", "i", "67"], check=True, timeout=5)
    assert osc_in.recorder.wait_for(3) == [NoteMessage(67, 80, 9), NamedControl("tempo_bpm", 96.5),
                                           NoteMessage(67, 0, 0)]


def test_bad_datagrams_are_dropped_counted_and_warned_once_per_kind(osc_in, raw_sender):
    rng = random.Random(7)
    random_bytes = bytes([0x41]) + bytes(rng.randrange(256) for _ in range(63))
    cases = [  # (datagram, kind it must count as)
        (encode_message("/note/on", "C4", "loud"), "type"),
        (encode_message("/note/on", 60), "type"),  # too few arguments
        (encode_message("/note/off", 60, 0, 0), "type"),  # too many
        (encode_message("/note/on", 200, 100), "range"),
        (encode_message("/note/on", 60, 128), "range"),
        (encode_message("/note/on", 60, 100, 16), "range"),
        (encode_message("/note/on", 60.5, 100), "range"),  # not a whole number
        (encode_message("/control/temperature", math.nan), "range"),
        (encode_message("/control/temperature", math.inf, tags="d"), "range"),
        (encode_message("/control/bad/name", 1.0), "value"),
        (encode_message("/nowhere", 1), "unknown-address"),
        (encode_message("/game/guess", 60), "reserved-address"),
        (random_bytes, "malformed"),
        (b"", "malformed"),
        (encode_message("/note/on", 60, 100)[:-4], "malformed"),  # truncated argument
        (b"/note/on\x00\x00\x00\x00iii\x00" + bytes(12), "malformed"),  # type tags without ','
        (encode_message("/no?te?", 60, 100).replace(b"?", b"\xff"), "encoding"),
        (nested(100, encode_message("/note/on", 60, 100)), "bundle-depth"),
    ]
    expected: dict[str, int] = {}
    for round_number in range(2):
        for datagram, kind in cases:
            raw_sender.sendto(datagram, osc_in.address)
            expected[kind] = expected.get(kind, 0) + 1
        raw_sender.sendto(encode_message("/note/on", 70 + round_number, 100), osc_in.address)
        osc_in.recorder.wait_for(round_number + 1)
        assert wait_until(lambda: osc_in.drops == expected), osc_in.drops
    assert osc_in.recorder.events == [NoteMessage(70, 100), NoteMessage(71, 100)]
    warnings = osc_in.take_warnings()
    assert len(warnings) == len(expected)  # once per kind, though each kind came at least twice
    assert all("\n" not in line and osc_in.name in line for line in warnings)
    by_kind = {kind: next(line for line in warnings if f"'{kind}'" in line) for kind in expected}
    assert "/note/on" in by_kind["type"] and "not a number" in by_kind["type"]
    assert "/note/on" in by_kind["range"] and "pitch 200" in by_kind["range"]
    assert "/nowhere" in by_kind["unknown-address"] and "/game/" in by_kind["reserved-address"]
    assert "UTF-8" in by_kind["encoding"] and "nested" in by_kind["bundle-depth"]
    assert osc_in.take_warnings() == []
    assert osc_in.alive


def test_a_hostile_address_cannot_break_the_warning_line(osc_in, raw_sender):
    raw_sender.sendto(encode_message("/x\nERROR fake log line\r", 1), osc_in.address)
    assert wait_until(lambda: osc_in.drops == {"unknown-address": 1})
    (line,) = osc_in.take_warnings()
    assert line.isprintable() and "\\n" in line


def test_a_bundle_an_hour_ahead_does_not_stall_the_next_message(osc_in, raw_sender):
    an_hour_ahead = ntp_timetag(time.time() + 3600)
    raw_sender.sendto(encode_bundle(encode_message("/note/on", 60, 100), timetag=an_hour_ahead), osc_in.address)
    sent_ns = time.monotonic_ns()
    raw_sender.sendto(encode_message("/note/on", 62, 100), osc_in.address)
    osc_in.recorder.wait_for(2, timeout_s=0.5)
    (first, _), (second, arrival_ns) = osc_in.recorder.received
    assert (first, second) == (NoteMessage(60, 100), NoteMessage(62, 100))  # the timetag is ignored
    assert arrival_ns - sent_ns < 100_000_000


def test_bundles_deliver_in_order_and_drop_only_their_bad_messages(osc_in, raw_sender):
    inner = encode_bundle(encode_message("/note/on", 64, 90), encode_message("/note/on", 999, 90))
    raw_sender.sendto(encode_bundle(encode_message("/note/on", 60, 90), inner, encode_message("/note/off", 60)),
                      osc_in.address)
    raw_sender.sendto(nested(MAX_BUNDLE_DEPTH, encode_message("/note/on", 72, 50)), osc_in.address)
    raw_sender.sendto(nested(MAX_BUNDLE_DEPTH + 1, encode_message("/note/on", 73, 50)), osc_in.address)
    raw_sender.sendto(encode_bundle(encode_message("/note/on", 1, 1))[:-2], osc_in.address)  # element overruns
    raw_sender.sendto(encode_message("/note/on", 74, 50), osc_in.address)
    events = osc_in.recorder.wait_for(5)
    assert events == [NoteMessage(60, 90), NoteMessage(64, 90), NoteMessage(60, 0), NoteMessage(72, 50),
                      NoteMessage(74, 50)]
    assert len({t for _, t in osc_in.recorder.received[:3]}) == 1  # one bundle, one arrival time
    assert osc_in.drops == {"range": 1, "bundle-depth": 1, "malformed": 1}


def test_allowlist_drops_other_senders(raw_sender):
    clock = SystemClock()
    elsewhere = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    elsewhere.bind(("127.0.0.2", 0))  # Linux routes all of 127/8 to loopback
    only_two = OscInput(clock, port=0, allow=("127.0.0.2",))
    default = OscInput(clock, port=0)
    anyone = OscInput(clock, port=0, allow=None)
    ports = (only_two, default, anyone)
    recorders = [Recorder() for _ in ports]
    try:
        for port, recorder in zip(ports, recorders):
            port.set_listener(recorder)
            raw_sender.sendto(encode_message("/note/on", 60, 100), port.address)  # from 127.0.0.1
            elsewhere.sendto(encode_message("/note/on", 62, 100), port.address)  # from 127.0.0.2
        assert recorders[0].wait_for(1) == [NoteMessage(62, 100)]
        assert recorders[1].wait_for(1) == [NoteMessage(60, 100)]
        assert sorted(recorders[2].wait_for(2), key=lambda n: n.pitch) == [NoteMessage(60, 100), NoteMessage(62, 100)]
        assert wait_until(lambda: only_two.drops == {"sender": 1} and default.drops == {"sender": 1})
        assert "127.0.0.2" in default.take_warnings()[0] and anyone.drops == {}
    finally:
        elsewhere.close()
        for port in ports:
            port.close()


def test_fuzzed_datagrams_never_kill_the_thread_or_log(osc_in, raw_sender, caplog):
    rng = random.Random(1234)
    seeds = [encode_message("/note/on", 60, 100, 1), encode_message("/control/x", 0.5),
             encode_message("/note/off", 60), encode_message("/control/temperature", 0.7, tags="d")]
    sent = 0
    for _ in range(10):
        for _ in range(100):
            datagram = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                action = rng.randrange(3)
                if action == 0:
                    datagram[rng.randrange(len(datagram))] = rng.randrange(256)
                elif action == 1:
                    del datagram[rng.randrange(1, len(datagram) + 1):]
                else:
                    datagram += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
            datagram[0:1] = b"/"  # stay a message: one datagram, exactly one outcome
            raw_sender.sendto(bytes(datagram), osc_in.address)
            sent += 1
        outcomes = lambda: len(osc_in.recorder.received) + sum(osc_in.drops.values())  # noqa: E731
        assert wait_until(lambda: outcomes() == sent), (outcomes(), sent)
    assert osc_in.alive and "internal" not in osc_in.drops
    raw_sender.sendto(encode_message("/note/on", 99, 99), osc_in.address)
    assert wait_until(lambda: osc_in.recorder.events[-1:] == [NoteMessage(99, 99)])
    assert caplog.records == []


def test_a_failing_listener_is_counted_and_the_thread_survives(osc_in, raw_sender):
    def explode(event, arrival_ns):
        raise RuntimeError("boom")

    osc_in.set_listener(explode)
    raw_sender.sendto(encode_message("/note/on", 60, 100), osc_in.address)
    assert wait_until(lambda: osc_in.drops == {"callback": 1})
    osc_in.set_listener(osc_in.recorder)
    raw_sender.sendto(encode_message("/note/on", 61, 100), osc_in.address)
    assert osc_in.recorder.wait_for(1) == [NoteMessage(61, 100)]
    assert "boom" in osc_in.take_warnings()[0]


def test_register_extends_a_reserved_prefix_and_the_readme_table(osc_in, raw_sender):
    spec = AddressSpec((Arg("pitch", "int", 0, 127),), "Guess the pitch of the hidden note")
    osc_in.register("/game/guess", spec, lambda address, values: NamedControl("guess", values[0]))
    raw_sender.sendto(encode_message("/game/guess", 64), osc_in.address)
    raw_sender.sendto(encode_message("/game/other", 64), osc_in.address)  # the rest stays reserved
    raw_sender.sendto(encode_message("/note/on", 60, 1), osc_in.address)
    assert osc_in.recorder.wait_for(2) == [NamedControl("guess", 64.0), NoteMessage(60, 1)]
    assert osc_in.drops == {"reserved-address": 1}
    assert "| `/game/guess` | pitch:int 0-127 | Guess the pitch" in address_table_markdown(osc_in.table)
    with pytest.raises(ValueError):
        osc_in.register("game", spec, lambda address, values: None)


def test_address_table_markdown_lists_every_address():
    table = address_table_markdown()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["/note/on", "/note/off", "/control/<name>", "/learn",
                                                   "/mode", "/memory/save", "/rhythm", "/mood", "/style", "/leadsheet/progression",
                                                   "/leadsheet/key", "/game/...", "/transport/..."]
    assert "| `/note/on` | pitch:int 0-127, velocity:int 0-127, [channel:int 0-15 = 0] |" in table
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(row in readme for row in rows), "the README shows the table the code accepts"


def test_close_is_idempotent_joins_and_frees_the_port():
    port = OscInput(SystemClock(), port=0)
    address = port.address
    started = time.monotonic()
    port.close()
    port.close()
    assert not port.alive and time.monotonic() - started < 0.5
    OscInput(SystemClock(), *address).close()  # the port is free again


def test_close_from_the_listener_does_not_deadlock(raw_sender):
    port = OscInput(SystemClock(), port=0)
    port.set_listener(lambda event, arrival_ns: port.close())
    raw_sender.sendto(encode_message("/note/on", 60, 100), port.address)
    assert wait_until(lambda: not port.alive)
    port.close()


def test_bind_error_is_a_port_error_naming_host_and_port(osc_in):
    host, port = osc_in.address
    with pytest.raises(PortError, match=f"{host}:{port}") as caught:
        OscInput(SystemClock(), host, port)
    assert isinstance(caught.value, OSError)


# --- output ---------------------------------------------------------------------------------------

@pytest.fixture
def python_osc_server():
    """A python-osc server (strict_timing off) recording (address, *args) in arrival order."""
    received: list[tuple] = []
    dispatcher = Dispatcher(strict_timing=False)
    dispatcher.set_default_handler(lambda address, *args: received.append((address, *args)))
    server = osc_server.BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.received = received
    yield server
    server.shutdown()
    server.server_close()


def test_output_reaches_a_python_osc_server_and_close_releases_held_notes(python_osc_server):
    out = OscOutput(*python_osc_server.server_address)
    out.send(NoteMessage(60, 100, 2))
    out.send(NoteMessage(60, 0, 2))
    out.send(NoteMessage(64, 90))
    out.send(NoteMessage(67, 80, 15))
    assert out.notes.held == {(0, 64), (15, 67)}
    out.close()
    out.close()
    expected = [("/note/on", 60, 100, 2), ("/note/off", 60, 2), ("/note/on", 64, 90, 0),
                ("/note/on", 67, 80, 15), ("/note/off", 64, 0), ("/note/off", 67, 15)]
    assert wait_until(lambda: len(python_osc_server.received) >= 6)
    assert python_osc_server.received == expected
    assert out.notes.held == set() and out.errors == {}


def test_output_packets_parse_back_exactly():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(2)
        out = OscOutput(*receiver.getsockname(), prefix="/synth")
        out.send(NoteMessage(60, 100, 1))
        out.all_notes_off()
        on, _ = receiver.recvfrom(1024)
        off, _ = receiver.recvfrom(1024)
        out.close()
    assert on == b"/synth/note/on\x00\x00,iii\x00\x00\x00\x00" + struct.pack(">iii", 60, 100, 1)
    for packet, address, params in [(on, "/synth/note/on", [60, 100, 1]), (off, "/synth/note/off", [60, 1])]:
        parsed = osc_message.OscMessage(packet)
        assert (parsed.address, parsed.params, len(packet) % 4) == (address, params, 0)
    for address in ["/note/on", "/a", "/abc", "/abcd", "/note/off"]:  # every padding length
        for ints in [(), (0,), (127, 0), (1, 2, 3)]:
            parsed = osc_message.OscMessage(encode_message(address, *ints))
            assert (parsed.address, parsed.params) == (address, list(ints))


@pytest.mark.usefixtures("needs_liblo")
def test_liblo_oscdump_sees_output():
    port = free_udp_port()
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in dump.stdout], daemon=True).start()
    out = OscOutput("127.0.0.1", port)
    try:
        for _ in range(150):  # oscdump prints nothing until it listens: knock until it answers
            out.send(NoteMessage(1, 0, 0))
            try:
                lines.get(timeout=0.02)
                break
            except queue.Empty:
                pass
        else:
            pytest.fail("oscdump never answered")
        out.send(NoteMessage(60, 100, 1))
        out.send(NoteMessage(60, 0, 1))
        seen = []
        deadline = time.monotonic() + 2
        while not any("/note/off ii 60 1" in line for line in seen) and time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=0.1))
            except queue.Empty:
                pass
        messages = [line.split(" ", 1)[1].strip() for line in seen]  # drop oscdump's timetag column
        assert [m for m in messages if m != "/note/off ii 1 0"] == ["/note/on iii 60 100 1", "/note/off ii 60 1"]
    finally:
        out.close()
        dump.terminate()
        dump.wait(timeout=5)


def test_output_counts_errors_instead_of_raising():
    out = OscOutput("255.255.255.255", 9)  # broadcast without SO_BROADCAST: sendto is refused
    out.send(NoteMessage(60, 100))
    out.send(NoteMessage(128, 100))
    out.close()
    out.send(NoteMessage(61, 100))
    assert out.errors == {"send": 2, "range": 1, "closed": 1}  # the note-on and its release on close
    assert len(out.take_warnings()) == 3


def test_output_rejects_a_bad_prefix_or_port():
    with pytest.raises(ValueError):
        OscOutput(prefix="synth/")
    with pytest.raises(PortError):
        OscOutput(port=70000)
