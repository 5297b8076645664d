"""The listener in the engine: the duet at the player's tempo, any mode reading it, the status line, /listen/*
over real UDP (from the sender and from `realtime run`), and [listen] in a patch."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient
from test_listen import MS, tune
from test_run_osc import Listener as OscRecorder, _free_port, _start

from realtime.app import LiveEngine
from realtime.bench.performance import TempoMap, perform
from realtime.clock import FakeClock
from realtime.engine.continuation import Continuation
from realtime.engine.engine import Engine
from realtime.errors import PatchError
from realtime.events import NoteMessage
from realtime.io.ports import MemoryInput, MemoryOutput
from realtime.listen import Listener
from realtime.listen.osc import LISTEN_MESSAGES, ListenSender, sent_table_markdown
from realtime.model.generator import Generator
from realtime.model.generator import ModelRunner
from realtime.model.sampling import Sampler
from realtime.model.tokens import IOI_BEATS
from realtime.patch import parse_patch
from realtime.scheduler import Scheduler
from realtime.settings import LISTEN_RANGES, ContinuationSettings, ListenSettings, ranges_table_markdown


# --- the duet at the player's tempo ------------------------------------------------------------------------
def duet_answer_iois(model, follow: bool, player_bpm: float = 75.0, patch_bpm: float = 100.0):
    clock = FakeClock()
    keyboard, output = MemoryInput(clock), MemoryOutput(clock)
    scheduler = Scheduler(output, late_tolerance_ns=3 * MS)
    settings = ContinuationSettings(tempo_bpm=patch_bpm, phrase_end_beats=1.5, follow_tempo=follow,
                                    answer_notes=16, answer_beats=16)
    listener = Listener(ListenSettings(), tempo_bpm=patch_bpm)
    generator = Generator(ModelRunner(model), Sampler(11, 0.9, 0.92))
    generator.reset()
    mode = Continuation(generator, scheduler, settings, clock=clock, listener=listener)
    engine = Engine(mode, clock, [keyboard], scheduler, listener=listener)
    events = perform(tune(16), TempoMap(((0.0, player_bpm),)), jitter_ms=8, seed=5, origin_ns=MS)
    end_ns = events[-1][0] + 12_000 * MS
    while clock.now_ns() < end_ns:
        clock.advance_ms(1)
        while events and events[0][0] <= clock.now_ns():
            _, message = events.pop(0)
            keyboard.play(message.pitch, message.velocity)
        engine.tick()
    onsets = sorted({t for t, m in output.sent if m.is_on})
    return listener, np.diff(onsets) / MS


def _on_grid(iois_ms, beat_ms: float) -> np.ndarray:
    grid = np.array([b * beat_ms for b in IOI_BEATS[1:]])
    return np.min(np.abs(iois_ms[:, None] - grid[None, :]), axis=1) <= 1.0


def test_the_duet_answers_at_the_players_tempo_not_the_patchs(shipped_model):
    listener, iois = duet_answer_iois(shipped_model, follow=True)
    tempo = listener.snapshot().tempo
    assert tempo.locked and abs(tempo.bpm - 75) < 2
    assert len(iois) >= 6
    assert _on_grid(iois, 60_000 / tempo.bpm).all(), "every answer onset falls on the player's beat grid"
    assert not _on_grid(iois, 600.0).all(), "some fall off the patch's 100 BPM grid"
    _, patch_iois = duet_answer_iois(shipped_model, follow=False)
    assert _on_grid(patch_iois, 600.0).all(), "follow_tempo = false keeps the patch's tempo"


# --- /listen/* over real UDP -------------------------------------------------------------------------------
def test_listen_messages_arrive_over_udp_loopback():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    clock = FakeClock(10_000 * MS)
    listener = Listener(tempo_bpm=100)
    for i, pitch in enumerate((50, 53, 57, 60)):  # D F A C: Dm7
        listener.hear(NoteMessage(pitch, 90), clock.now_ns() + i * MS)
    for beat in range(8):
        listener.hear(NoteMessage(74, 90), clock.now_ns() + beat * 500 * MS)  # a melody at 120 BPM
        listener.refresh(clock.now_ns() + beat * 500 * MS)
    clock.advance_ms(3500)
    sender = ListenSender(listener, clock, "127.0.0.1", receiver.getsockname()[1], interval_ms=20)
    got: dict[str, list] = {}
    try:
        deadline = time.monotonic() + 3
        while set(got) != set(LISTEN_MESSAGES) and time.monotonic() < deadline:
            message = OscMessage(receiver.recv(1024))
            got[message.address] = message.params
    finally:
        sender.close()
        receiver.close()
    assert got["/listen/chord"][:2] == [2, "m7"] and got["/listen/chord"][2] > 0.9
    assert got["/listen/key"][1] in ("major", "minor") and 0 <= got["/listen/key"][0] <= 11
    bpm, phase, locked = got["/listen/tempo"]
    assert abs(bpm - 120) < 2 and locked == 1 and 0 <= phase < 1


# --- [listen] in a patch -----------------------------------------------------------------------------------
@pytest.mark.parametrize("table, words", [
    ({"zone": "right"}, "zone must be 'all' or 'left'"),
    ({"split_pitch": 130}, "split_pitch must be between 0 and 127"),
    ({"split_pitch": 60.5}, "split_pitch must be a whole number"),
    ({"key_decay_s": 0}, "key_decay_s must be between 1 and 600 s"),
    ({"chord_release_ms": "long"}, "chord_release_ms must be a number"),
    ({"tempo_source": "link"}, "tempo_source must be 'playing' or 'midi_clock'"),
    ({"tempo_memory_beats": 40}, "tempo_memory_beats must be between 1 and 16"),
    ({"osc_interval_ms": 1}, "osc_interval_ms must be between 10 and 5000 ms"),
    ({"spilt_pitch": 60}, "unknown key 'spilt_pitch'"),
])
def test_bad_listen_values_get_one_line_errors(table, words):
    with pytest.raises(PatchError) as info:
        parse_patch({"listen": table}, "duet.toml")
    message = str(info.value)
    assert message.startswith("duet.toml: [listen] ") and words in message and "\n" not in message


def test_a_midi_clock_tempo_needs_midi():
    with pytest.raises(PatchError, match=r"\[listen\] tempo_source = \"midi_clock\" needs \[midi\] enabled"):
        parse_patch({"listen": {"tempo_source": "midi_clock"}, "midi": {"enabled": False}}, "duet.toml")


def test_follow_tempo_is_a_continuation_key():
    assert parse_patch({"continuation": {"follow_tempo": False}}).continuation.follow_tempo is False
    with pytest.raises(PatchError, match="follow_tempo must be true or false"):
        parse_patch({"continuation": {"follow_tempo": "no"}}, "duet.toml")


# --- the running engine: status line, and /listen/* from `realtime run` ------------------------------------
def test_the_status_line_shows_what_the_listener_hears():
    clock = FakeClock(1_000 * MS)
    patch = parse_patch({"engine": {"tempo_bpm": 100}, "continuation": {"phrase_end_ms": 5000},
                         "midi": {"enabled": False}, "osc": {"enabled": False}}, "status.toml")
    live = LiveEngine(patch, clock=clock)
    keys = MemoryInput(clock)
    keys.set_listener(live.engine._hear)
    try:
        assert "chord - " in live.status() and "tempo -" in live.status()
        for beat in range(10):  # an F major chord held, a melody on top at 90 BPM
            if beat == 0:
                for pitch in (53, 57, 60):
                    keys.play(pitch, 80)
            keys.play((65, 69, 72)[beat % 3] + 12, 90)
            live.engine.tick()
            clock.advance_ms(600)
            keys.play((65, 69, 72)[beat % 3] + 12, 0)
            live.engine.tick()
            clock.advance_ms(60_000 / 90 - 600)
        status = live.status()
        assert "chord F " in status and "key F major" in status and "90." in status and "locked" in status, status
    finally:
        live.stop()


def test_realtime_run_sends_listen_messages_to_out_host(tmp_path):
    recorder, osc_in = OscRecorder(), _free_port()
    proc = _start(tmp_path, recorder, osc_in)  # [osc] out_host = 127.0.0.1, [engine] tempo_bpm = 120
    try:
        player = SimpleUDPClient("127.0.0.1", osc_in)
        for pitch in (57, 60, 64):  # A minor, held
            player.send_message("/note/on", [pitch, 80])
        for _ in range(8):  # quarter notes at 100 BPM above it
            player.send_message("/note/on", [76, 90])
            time.sleep(0.5)
            player.send_message("/note/off", [76])
            time.sleep(0.1)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            tempo = [args for _, address, args in recorder.events if address == "/listen/tempo"]
            if tempo and tempo[-1][2] == 1:
                break
            time.sleep(0.05)
        for pitch in (57, 60, 64):
            player.send_message("/note/off", [pitch])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        recorder.server.shutdown()
    chords = [args for _, address, args in recorder.events if address == "/listen/chord"]
    assert chords and tuple(chords[-1][:2]) == (9, "min") and chords[-1][2] > 0.9
    bpm, phase, locked = tempo[-1]
    assert locked == 1 and abs(bpm - 100) < 4 and 0 <= phase < 1


def test_the_readme_shows_the_listening_tables_the_code_has():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert ranges_table_markdown(LISTEN_RANGES) in readme
    assert sent_table_markdown() in readme
    for name, r in LISTEN_RANGES.items():  # each range is the one the patch check enforces
        assert getattr(ListenSettings(), name) == r.default
        parse_patch({"listen": {name: type(getattr(ListenSettings(), name))(r.high)}})
        with pytest.raises(PatchError, match=name):
            parse_patch({"listen": {name: type(getattr(ListenSettings(), name))(r.high + 1)}})


def test_any_mode_reads_the_listener_the_engine_feeds():
    class Quiet:  # a mode that only listens
        def __init__(self):
            self.heard = []

        def on_message(self, message, at_ns):
            self.heard.append(self.listener.snapshot(at_ns).chord.name)

        def tick(self, now_ns):
            pass

        def next_deadline_ns(self):
            return None

        def stop(self, now_ns):
            pass

        def apply_control(self, target, value):
            pass

    clock, mode = FakeClock(), Quiet()
    keys = MemoryInput(clock)
    engine = Engine(mode, clock, [keys], Scheduler(MemoryOutput(clock)), listener=Listener())
    assert mode.listener is engine.listener
    for pitch in (55, 59, 62, 65):  # G7
        keys.play(pitch, 80)
    engine.tick()
    clock.advance_ms(5)
    keys.play(79, 80)
    engine.tick()
    assert mode.heard[-1] == "G7"
