"""Faults and floods the engine must survive with nothing lost and nothing held (fake clock where it can,
real UDP where the kernel is part of the story)."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
from test_engine import PHRASE_END_MS, Duet, phrase_events

from realtime.app import LiveEngine
from realtime.clock import SystemClock
from realtime.engine.engine import INBOX_LIMIT
from realtime.errors import ModelFileError, PortError
from realtime.events import NamedControl, NoteMessage
from realtime.io.osc import OscInput
from realtime.io.osccodec import encode_bundle, encode_message
from realtime.patch import parse_patch


def test_a_note_off_that_never_comes_does_not_silence_the_duet(shipped_model):
    duet = Duet(shipped_model, phrase_end_ms=500, max_note_ms=8000)
    held_forever = [(0, 55, 90)]  # a sender that died after this note-on
    duet.run_to(PHRASE_END_MS + 500 + 1000, phrase_events(offset_ms=100) + held_forever)
    assert duet.note_ons() == [], "a note still sounds: no answer yet"
    duet.run_to(8000 + 500 + 3000)
    assert duet.mode.notes_timed_out == 1
    assert duet.note_ons(), "the overlong note was taken as ended and the phrase answered"
    assert duet.note_ons()[0][0] >= 8000 + 500, "but only once it had outlived max_note_ms"


def test_a_flooded_inbox_drops_counts_and_still_hears_the_note_off(shipped_model):
    duet = Duet(shipped_model, phrase_end_ms=500)
    events = phrase_events()
    last_off = events.pop()  # the phrase's final note-off will arrive behind a flood
    duet.run_to(last_off[0] - 1, events)
    flood = 3 * INBOX_LIMIT
    for i in range(flood):  # faster than any tick: nothing drains between these
        duet.engine._hear(NamedControl("temperature", (i % 100) / 100), duet.clock.now_ns())
    duet.engine._hear(NoteMessage(last_off[1], 0), duet.clock.now_ns())
    assert duet.engine.inbox_drops == flood - INBOX_LIMIT
    duet.run_to(PHRASE_END_MS + 500 + 2000)
    assert duet.note_ons(), "the note-off got through the full inbox and the phrase was answered"
    assert duet.note_ons()[0][0] <= PHRASE_END_MS + 500 + 2, "on time despite the flood"


def test_a_tick_handles_only_what_was_waiting_so_the_mode_always_runs(shipped_model):
    duet = Duet(shipped_model)
    ticks = []
    original = duet.mode.tick
    duet.mode.tick = lambda now: (ticks.append(len(duet.engine._inbox)), original(now))

    class Refill:  # a control handler that queues another control: a flood that never ends
        def __init__(self):
            self.calls = 0

        def __call__(self, target, value):
            self.calls += 1
            duet.engine._hear(NamedControl("temperature", 0.5), 0)

    from realtime.patch import ControlMapping
    duet.engine.controls = {"osc:temperature": [ControlMapping("osc:temperature", "temperature", 0.5, 1.5)]}
    duet.mode.apply_control = Refill()
    duet.engine._hear(NamedControl("temperature", 0.5), 0)
    duet.engine.tick()
    duet.engine.tick()
    assert len(ticks) == 2 and duet.mode.apply_control.calls == 2


def test_an_osc_flood_is_bounded_and_every_datagram_is_accounted_for():
    """Hostile datagrams sent as fast as the loopback takes them: the input survives, each datagram is
    delivered, dropped with its kind, or counted as kernel overflow; a legitimate note gets through after."""
    received = []
    port = OscInput(SystemClock(), port=0)
    port.set_listener(lambda event, at_ns: received.append(event))
    hostile = [
        b"\xff" * 37,
        encode_message("/note/on", 60, 999),
        encode_message("/note/on", "loud"),
        encode_message("/control/temperature", float("nan")),
        encode_message("/control/temperature", float("inf"), tags="d"),
        encode_message("/" + "x" * 8000, 40000).replace(b",i\x00\x00", b",b\x00\x00") + bytes(40000),  # a blob
        encode_message("/nowhere", 1),
        b"#bundle\x00" + bytes(4),  # shorter than a bundle header
    ]
    deep = encode_message("/note/on", 60, 1)
    for _ in range(20):
        deep = encode_bundle(deep)
    hostile.append(deep)
    sent = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(20_000):
                sender.sendto(hostile[i % len(hostile)], port.address)
                sent += 1
            legit = encode_message("/note/on", 64, 90)
            done = threading.Event()
            for _ in range(200):  # until it lands: the kernel may still be dropping the flood's tail
                sender.sendto(legit, port.address)
                sent += 1
                if done.wait(0.01) or received:
                    break
        accounted = lambda: port.delivered + sum(port.drops.values())  # noqa: E731
        done.wait(0.2)
        assert _eventually(lambda: accounted() == sent), (accounted(), sent, port.drops)
        assert received and set(received) == {NoteMessage(64, 90)}, "only the legitimate note came through"
        assert port.alive and "internal" not in port.drops and "callback" not in port.drops
        assert {"malformed", "range", "type", "unknown-address", "bundle-depth"} <= set(port.drops)
    finally:
        port.close()


def _eventually(predicate, timeout_s: float = 5.0) -> bool:
    finished = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return True
        finished.wait(0.01)
    return predicate()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_failed_start_leaves_nothing_open():
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    listener_port = _free_udp_port()
    threads_before = set(threading.enumerate())
    patch = parse_patch({"midi": {"enabled": False},
                         "osc": {"port": busy.getsockname()[1], "out_host": "127.0.0.1", "out_port": listener_port}})
    try:
        with pytest.raises(PortError, match="cannot listen"):
            LiveEngine(patch)
    finally:
        busy.close()
    assert set(threading.enumerate()) <= threads_before, "no thread was left running"


def test_what_an_osc_output_cannot_send_reaches_the_warnings_and_the_status_line(shipped_model):
    patch = parse_patch({"model": {"name": str(shipped_model)}, "midi": {"enabled": False},
                         "osc": {"port": _free_udp_port(), "out_host": "255.255.255.255", "out_port": 9}})
    live = LiveEngine(patch)  # broadcast without SO_BROADCAST: every sendto is refused
    try:
        assert live.supervise() == [] and "dropped" not in live.status()
        live.output.send(NoteMessage(60, 100))
        live.output.send(NoteMessage(62, 100))
        (line,) = live.supervise()
        assert "osc-out 255.255.255.255:9: send failed" in line and "'send'" in line
        assert live.dropped() == 2 and "dropped 2" in live.status()
        assert live.supervise() == [], "one warning per kind"
    finally:
        live.stop()


def test_a_bad_model_fails_before_any_port_opens(tmp_path, shipped_model):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(shipped_model.read_bytes()[:1000])
    broken.with_suffix(".json").write_text(shipped_model.with_suffix(".json").read_text())
    port = _free_udp_port()
    with pytest.raises(ModelFileError, match="broken.onnx"):
        LiveEngine(parse_patch({"model": {"name": str(broken)}, "midi": {"enabled": False}, "osc": {"port": port}}))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))  # the OSC port was never taken, or was given back


def test_a_backlog_is_triaged_notes_first():
    """More than SHED_AFTER datagrams waiting at once: past that point only notes are parsed."""
    from realtime.io.osc import SHED_AFTER

    heard, release = [], threading.Event()

    def listener(event, at_ns):
        if not heard:
            release.wait(5)  # hold the receive thread while a backlog builds in the socket
        heard.append(event)

    port = OscInput(SystemClock(), port=0)
    port.set_listener(listener)
    control = encode_message("/control/temperature", 0.5)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(encode_message("/note/on", 60, 90), port.address)
            assert _eventually(lambda: port.received == 1)
            for _ in range(100):
                sender.sendto(control, port.address)
            sender.sendto(encode_message("/note/off", 60), port.address)
            release.set()
            assert _eventually(lambda: port.received == 102)
        assert heard[0] == NoteMessage(60, 90) and heard[-1] == NoteMessage(60, 0), "both notes got through"
        controls = [e for e in heard if isinstance(e, NamedControl)]
        assert len(controls) == SHED_AFTER - 1 and port.drops == {"shed": 100 - (SHED_AFTER - 1)}
        assert any("flood" in line for line in port.take_warnings())
    finally:
        release.set()
        port.close()


def test_the_live_fallback_learner_stays_bounded_all_show_long():
    from realtime.model.markov import MarkovModel

    learner = MarkovModel(max_order=4, max_contexts=500)
    rng = np.random.default_rng(0)
    for _ in range(200):  # a long show of varied phrases: far more contexts than the cap
        learner.update(list(rng.integers(40, 90, 64)))
    assert len(learner._followers) == 500
    context = [60, 62, 64]
    p = learner.distribution(context)
    assert p.shape == (128,) and abs(p.sum() - 1) < 1e-9, "still a distribution to sample from"
