"""The stage modes under faults, as a user runs them: `realtime run` on a shipped stage patch over JACK MIDI,
a keyboard (rtmidi, a foreign client) holding notes, and a JACK receiver counting what the engine holds.
Whatever happens while the engine sounds notes (the keyboard unplugged with keys down, the patch reloaded,
the run ending by itself) every engine note ends with its note-off and nothing sounds on the player's
channel."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from jackclients import Keyboard, Receiver, Running, run_realtime, wait_for

from realtime.bench.harmony import patch_text
from realtime.io import midi

ROOT = Path(__file__).resolve().parents[1]
STAGE = ["harmonize", "accompany"]  # shipped patches/NAME.toml of the modes that play while the player plays
BANDS = STAGE + ["leadsheet"]  # and the band that plays on its own (an unplugged keyboard does not stop it)
CHORD = (38, 50, 54, 57)  # D major in the left hand (below every split): every stage mode plays over it


def _patch(tmp_path: Path, mode: str, extra: str = "") -> Path:
    text = patch_text((ROOT / "patches" / f"{mode}.toml").read_text()).replace("enabled = true", "enabled = false")
    path = tmp_path / f"{mode}.toml"
    path.write_text(text.replace("[engine]\n", f"[engine]\n{extra}", 1))
    return path


def _port(kind: str, part: str) -> str:
    return midi.resolve_port(midi.list_ports("jack")[kind], part, kind, "jack")


def _rig():
    synth, keyboard = Receiver(), Keyboard()
    synth.listen_to(_port("inputs", "realtime-out"))
    keyboard.play_into(_port("outputs", "realtime-in"))
    return synth, keyboard


def _hold_chord(keyboard: Keyboard, synth: Receiver) -> None:
    for pitch in CHORD:
        keyboard.note(pitch, 90)
        time.sleep(0.05)
    assert wait_for(lambda: len(synth.held()) >= 2, 5.0), f"the engine sounds over the chord: {synth.heard()[-8:]}"


def _engine_on_player_channel(synth: Receiver) -> list[list[int]]:
    return [m for m in synth.heard() if m[0] & 0x0F == 0 and m[0] & 0xF0 in (0x80, 0x90)]


@pytest.mark.parametrize("mode", STAGE)
def test_the_keyboard_unplugged_with_keys_down_ends_every_engine_note(jack, tmp_path, mode):
    with Running(_patch(tmp_path, mode), "--no-osc") as run:
        synth, keyboard = _rig()
        try:
            _hold_chord(keyboard, synth)
            keyboard.close()  # gone with every key down: no note-off will ever come
            assert wait_for(lambda: synth.held() == set(), 3.0), f"still sounding: {synth.held()}"
            assert _engine_on_player_channel(synth) == []
        finally:
            synth.close()
    assert run.returncode == 0, run.err[-400:]
    assert "disconnected; the keys it held are released" in run.err, run.err[-400:]


@pytest.mark.parametrize("mode", BANDS)
def test_reloading_the_patch_with_keys_down_ends_every_note_and_the_new_patch_plays(jack, tmp_path, mode):
    patch = _patch(tmp_path, mode)
    with Running(patch, "--no-osc") as run:
        synth, keyboard = _rig()
        try:
            _hold_chord(keyboard, synth)
            patch.write_text(patch.read_text().replace("seed = 0", "seed = 5"))
            run.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and "reloaded" not in run.proc.stdout.readline():
                pass
            assert wait_for(lambda: synth.held() == set(), 2.0), f"the old patch left sounding: {synth.held()}"
            for pitch in CHORD:
                keyboard.note(pitch, 0)
            synth.close()
            keyboard.close()
            synth, keyboard = _rig()  # the reloaded patch opened its ports anew
            _hold_chord(keyboard, synth)
            for pitch in CHORD:
                keyboard.note(pitch, 0)
            assert wait_for(lambda: synth.held() == set(), 3.0), f"let go of with the chord: {synth.held()}"
        finally:
            synth.close()
            keyboard.close()
    assert run.returncode == 0, run.err[-400:]


@pytest.mark.parametrize("mode", BANDS)
def test_a_run_ending_by_itself_with_keys_down_ends_every_note(jack, tmp_path, mode):
    proc = run_realtime(_patch(tmp_path, mode), "--no-osc", "--seconds", "4")
    synth, keyboard = _rig()
    try:
        _hold_chord(keyboard, synth)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "all notes off" in out, err[-400:]
        assert wait_for(lambda: synth.held() == set(), 1.0), f"still sounding: {synth.held()}"
        assert _engine_on_player_channel(synth) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        synth.close()
        keyboard.close()
