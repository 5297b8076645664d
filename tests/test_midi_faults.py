"""The whole engine on a private JACK server, against hostile MIDI and faults, with a real JACK MIDI receiver
counting the notes it holds after each one (a synth honouring note-offs, CC120 and CC123)."""

from __future__ import annotations

import time

import pytest
import rtmidi
from jackclients import PHRASE, RUN_PATCH, Keyboard, start_realtime
from jackclients import Receiver as Synth

from realtime.app import LiveEngine
from realtime.io import midi
from realtime.patch import parse_patch


def _wait(predicate, timeout_s: float = 5.0, live: LiveEngine | None = None, said: list | None = None) -> bool:
    """Poll, supervising the engine the way `realtime run` does twice a second (here more often)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if live is not None:
            messages = live.supervise()
            if said is not None:
                said += messages
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _live(output: str | None = None, **continuation) -> LiveEngine:
    patch = parse_patch({"engine": {"tempo_bpm": 120},
                         "continuation": {"phrase_end_ms": 300, "answer_notes": 40, "answer_beats": 40} | continuation,
                         "midi": {"backend": "jack", **({"output": output} if output else {})},
                         "osc": {"enabled": False}}, "jack-faults")
    live = LiveEngine(patch)
    live.start()
    return live


def _port(kind: str, part: str) -> str:
    return midi.resolve_port(midi.list_ports("jack")[kind], part, kind, "jack")


@pytest.fixture
def rig(jack):
    """A running engine on JACK with a keyboard playing into it and a synth listening to it."""
    live = _live()
    synth, keyboard = Synth(), Keyboard()
    synth.listen_to(_port("inputs", "realtime-out"))
    keyboard.play_into(_port("outputs", "realtime-in"))
    yield live, keyboard, synth
    live.stop()
    for port in (keyboard, synth):
        port.close()


def test_hostile_midi_is_dropped_counted_and_the_duet_goes_on(rig):
    live, keyboard, synth = rig
    sysex = [0xF0, 0x7D] + [0x55] * 1000 + [0xF7]
    keyboard.burst([sysex] * 300, per_period=8)  # a SysEx flood, 300 KB
    keyboard.burst([[0xF8] if i % 7 else [0xFE] for i in range(5000)])  # clock and active sensing
    strays = [[0x80 | pitch % 16, pitch, 0] for pitch in range(128)]  # note-offs for notes never played
    strays += [[0x90 | pitch % 16, pitch, 0] for pitch in range(128)]  # and as note-ons of velocity 0
    keyboard.burst(strays)
    keyboard.burst([[0x90, 200, 100], [0x90, 60, 255], [0xB0, 1, 130], [0x45, 1, 2], [0x90, 60]])  # out of range
    counts = live.inputs[0].counts
    assert _wait(lambda: counts["notes"] >= 256 and counts["malformed"] >= 5, live=live), counts
    started = time.monotonic()
    keyboard.phrase()
    assert _wait(lambda: len(synth.note_ons(after=started)) >= 3, live=live), "the engine still answers"
    assert synth.note_ons(after=started)[0] >= started + 0.7, "only after the real phrase, not after the flood"
    assert counts["malformed"] == 5 and counts["errors"] == 0 and counts["notes"] == 256 + 2 * len(PHRASE), counts
    assert live.engine.inbox_drops == 0
    live.stop()
    assert _wait(lambda: synth.held() == set(), 1.0), "nothing held after the stop"


def test_a_model_that_fails_mid_answer_leaves_nothing_held(rig):
    live, keyboard, synth = rig
    started = time.monotonic()
    keyboard.phrase()
    assert _wait(lambda: len(synth.note_ons(after=started)) >= 2, live=live)

    def broken(notes):
        raise RuntimeError("simulated onnxruntime failure")

    live.generator.runner.step_batch = broken
    said: list[str] = []
    failed_at = time.monotonic()
    keyboard.phrase((60, 62, 64))
    assert _wait(lambda: len(synth.note_ons(after=failed_at + 0.5)) >= 3, live=live, said=said), "fallback answers"
    assert any("model step failed" in line and "fallback" in line for line in said), said
    live.stop()
    assert _wait(lambda: synth.held() == set(), 1.0)


def test_the_synth_vanishing_mid_answer_and_coming_back_is_silenced(jack):
    synth = Synth("fluid", virtual=True)
    live = _live(output="fluid")
    keyboard = Keyboard()
    keyboard.play_into(_port("outputs", "realtime-in"))
    said: list[str] = []
    try:
        started = time.monotonic()
        keyboard.phrase()
        assert _wait(lambda: synth.held() and len(synth.note_ons(after=started)) >= 2, live=live)
        synth.close()  # the synth quits mid-note
        assert _wait(lambda: any("vanished" in line for line in said), live=live, said=said), said
        time.sleep(0.3)  # the engine keeps playing into nowhere
        synth = Synth("fluid", virtual=True)
        assert _wait(lambda: any("is back" in line for line in said), live=live, said=said), said
        assert _wait(lambda: synth.messages, 2.0)
        time.sleep(0.2)
        kinds = {m[0] & 0xF0 for _, m in synth.messages}
        assert 0xB0 in kinds, "the returning synth got the panic controls (CC64/120/123/121)"
        live.stop()
        assert _wait(lambda: synth.held() == set(), 1.0), "and holds nothing when the engine stops"
    finally:
        live.stop()
        keyboard.close()
        synth.close()


@pytest.mark.slow
def test_the_jack_server_dying_mid_answer_and_coming_back(jack):
    live = _live()
    keyboard, synth = Keyboard(), Synth()
    synth.listen_to(_port("inputs", "realtime-out"))
    keyboard.play_into(_port("outputs", "realtime-in"))
    said: list[str] = []
    try:
        keyboard.phrase()
        assert _wait(lambda: len(synth.note_ons()) >= 2, live=live)
        for port in (keyboard, synth):
            port.close()
        jack.stop()  # the server dies mid-answer, with the engine's notes sounding
        assert _wait(lambda: sum("JACK server stopped" in line for line in said) >= 2, live=live, said=said), said
        assert live._thread is not None and live._thread.is_alive(), "the engine runs on"
        jack.start()
        assert _wait(lambda: sum("JACK server is back" in line for line in said) >= 2, 10.0, live=live, said=said), said
        keyboard, synth = Keyboard("keys2"), Synth("synth2")
        synth.listen_to(_port("inputs", "realtime-out"))
        keyboard.play_into(_port("outputs", "realtime-in"))
        back = time.monotonic()
        keyboard.phrase()
        assert _wait(lambda: len(synth.note_ons(after=back)) >= 2, live=live), "answers on the new server"
        live.stop()
        assert _wait(lambda: synth.held() == set(), 1.0)
    finally:
        live.stop()
        for port in (keyboard, synth):
            try:
                port.close()
            except Exception:  # already closed above
                pass


# --- `realtime run` as a user runs it: stopping by itself, and reloading its patch, mid-answer ---------

def _connect():
    synth, keyboard = Synth(), Keyboard()
    synth.listen_to(_port("inputs", "realtime-out"))
    keyboard.play_into(_port("outputs", "realtime-in"))
    return synth, keyboard


def test_run_stopping_by_itself_mid_answer_leaves_nothing_held(jack, tmp_path):
    proc, _ = start_realtime(tmp_path, "--seconds", "3")
    synth, keyboard = _connect()
    try:
        keyboard.phrase()
        assert _wait(lambda: synth.held(), 3.0), "answering, a note sounding"
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "all notes off" in out, err
        assert len(synth.note_ons()) >= 2 and _wait(lambda: synth.held() == set(), 1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        synth.close()
        keyboard.close()


def test_run_reloading_its_patch_mid_answer_releases_every_note_over_jack(jack, tmp_path):
    import signal

    proc, patch = start_realtime(tmp_path)
    synth, keyboard = _connect()
    try:
        keyboard.phrase()
        assert _wait(lambda: synth.held(), 3.0), "answering, a note sounding"
        patch.write_text(RUN_PATCH.format(output="").replace("tempo_bpm = 120", "tempo_bpm = 90"))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "reloaded" not in proc.stdout.readline():
            pass
        assert _wait(lambda: synth.held() == set(), 1.0), "the old patch let go of every note"
        synth.close()
        keyboard.close()
        synth, keyboard = _connect()  # the reloaded patch opened its ports anew
        again = time.monotonic()
        keyboard.phrase((60, 64, 67))
        assert _wait(lambda: synth.note_ons(after=again + 0.3), 5.0), "the reloaded patch answers"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert _wait(lambda: synth.held() == set(), 1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        synth.close()
        keyboard.close()
