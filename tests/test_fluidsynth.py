"""FluidSynth against real components: a private JACK server, python-rtmidi's JACK output, the
`fluidsynth` binary recording a WAV in real time, and pyfluidsynth rendering offline."""

from __future__ import annotations

import secrets
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module, require_tools

from realtime.errors import PortError
from realtime.events import NoteMessage
from realtime.io import fluidsynth as fs
from realtime.io.synth import detect_onsets

SAMPLE_RATE = 48000
# (seconds after the first note, pitch, velocity): leaps, soft and loud, 200-500 ms apart
MELODY = [(0.0, 60, 100), (0.4, 67, 90), (0.7, 64, 110), (1.2, 72, 80), (1.4, 55, 120), (1.9, 69, 100),
          (2.1, 62, 95), (2.6, 76, 105)]
NOTE_S = 0.15
TOLERANCE_S = 0.030

@pytest.fixture
def needs_binary() -> None:
    require_tools("fluidsynth", package="fluidsynth")


@pytest.fixture
def jack_server(jack) -> str:
    """The private JACK server's name, which fluidsynth takes on its command line."""
    return jack.name


def _send_melody(midi_out, start_s: float) -> list[float]:
    """Play MELODY at its times from `start_s` (time.monotonic) and return when each note-on went."""
    pending = sorted([(at, 0x90, pitch, velocity) for at, pitch, velocity in MELODY]
                     + [(at + NOTE_S, 0x80, pitch, 0) for at, pitch, _ in MELODY])
    sent = []
    for at, status, pitch, velocity in pending:
        while time.monotonic() < start_s + at - 0.002:
            time.sleep(0.001)
        while time.monotonic() < start_s + at:  # the last 2 ms spin: sleep alone wakes late
            pass
        midi_out.send_message([status, pitch, velocity])
        if status == 0x90:
            sent.append(time.monotonic() - start_s)
    return sent


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        frames = wav.readframes(wav.getnframes())
    assert width == 2, f"expected 16-bit PCM, got {8 * width}-bit"
    return np.frombuffer(frames, dtype="<i2").reshape(-1, channels).mean(axis=1) / 32768.0, rate


def _best_offset(sent: list[float], detected: list[float]) -> float:
    """The constant lag (WAV time minus send time) that lines up the most onsets."""
    candidates = [d - s for s in sent for d in detected]
    return max(candidates, key=lambda lag: sum(any(abs(d - s - lag) <= TOLERANCE_S for d in detected) for s in sent))


def test_find_soundfont_prefers_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    font = tmp_path / "mine.sf2"
    font.write_bytes(b"RIFF")
    monkeypatch.setenv(fs.SOUNDFONT_ENV, str(font))
    assert fs.find_soundfont() == font
    monkeypatch.setenv(fs.SOUNDFONT_ENV, str(tmp_path / "gone.sf2"))
    with pytest.raises(PortError, match="REALTIME_SOUNDFONT"):
        fs.find_soundfont()


def test_missing_soundfont_names_the_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(fs.SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(fs, "SOUNDFONT_DIRS", (str(tmp_path),))
    with pytest.raises(PortError, match="fluid-soundfont-gm") as caught:
        fs.find_soundfont()
    assert "\n" not in str(caught.value)


@pytest.mark.usefixtures("needs_binary")
def test_process_without_jack_server_fails_clearly(tmp_path: Path) -> None:
    synth = fs.FluidSynthProcess(wav_path=tmp_path / "x.wav", jack_server=f"absent-{secrets.token_hex(3)}")
    started = time.monotonic()
    with pytest.raises(PortError, match="JACK"):
        synth.start(timeout_s=10)
    assert time.monotonic() - started < 5
    assert not synth.running


@pytest.mark.usefixtures("needs_binary")
def test_process_records_live_midi_in_time(jack_server: str, tmp_path: Path) -> None:
    import rtmidi
    wav_path = tmp_path / "played.wav"
    midi_out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"sender-{secrets.token_hex(2)}")
    try:
        with fs.FluidSynthProcess(wav_path=wav_path, jack_server=jack_server, sample_rate=SAMPLE_RATE) as synth:
            assert synth.midi_port in synth.jack_ports()
            midi_out.open_virtual_port("out")
            source = next(port for port in synth.jack_ports() if port.endswith(":out") and "sender-" in port)
            synth.connect_from(source)
            time.sleep(0.2)
            sent = _send_melody(midi_out, time.monotonic() + 0.1)
            time.sleep(0.8)  # let the last note ring into the file
        assert not synth.running
    finally:
        midi_out.close_port()
        midi_out.delete()  # its JACK client closes now, while the server lives (`del` left it open)
    audio, rate = _read_wav(wav_path)
    assert rate == SAMPLE_RATE
    assert np.max(np.abs(audio)) > 0.02, "the recording is silent"
    detected = detect_onsets(audio, rate)
    lag = _best_offset(sent, detected)
    assert 0.0 < lag < 3.0, f"the WAV starts before fluidsynth takes MIDI, so the lag is positive; got {lag:.3f}"
    errors_ms = [1000 * min(abs(d - s - lag) for d in detected) for s in sent]
    assert max(errors_ms) <= 1000 * TOLERANCE_S, f"onset errors (ms) after a {lag:.3f} s lag: {errors_ms}"
    assert len(detected) == len(sent), f"sent {len(sent)} notes, heard {len(detected)} onsets"


@pytest.mark.usefixtures("needs_binary")
def test_process_plays_to_jack_and_quits(jack_server: str) -> None:
    with fs.FluidSynthProcess(jack_server=jack_server, autoconnect_audio=False) as synth:
        ports = synth.jack_ports()
        assert set(synth.audio_ports) <= set(ports), ports
    assert synth.stop() is None  # already stopped: idempotent
    assert not any(port.startswith(synth.client_name) for port in synth.jack_ports())


def test_output_renders_offline_at_event_times() -> None:
    require_module("fluidsynth", "pip install pyfluidsynth; it loads Debian fluidsynth's library")
    events = [(at + 0.1, NoteMessage(pitch, velocity)) for at, pitch, velocity in MELODY]
    events += [(at + 0.1 + NOTE_S, NoteMessage(pitch, 0)) for at, pitch, _ in MELODY]
    with fs.FluidSynthOutput(sample_rate=SAMPLE_RATE) as synth:
        audio = synth.render_offline(events, tail_s=0.5)
        assert audio.dtype == np.float32 and len(audio) == round((MELODY[-1][0] + 0.6 + NOTE_S) * SAMPLE_RATE)
        assert synth.notes.held == set()
        detected = detect_onsets(audio, SAMPLE_RATE)
        wanted = [at + 0.1 for at, _, _ in MELODY]
        assert len(detected) == len(wanted)
        assert max(abs(d - w) for d, w in zip(detected, wanted)) < 0.010, (detected, wanted)


def test_output_close_silences_held_notes() -> None:
    require_module("fluidsynth", "pip install pyfluidsynth; it loads Debian fluidsynth's library")
    synth = fs.FluidSynthOutput(sample_rate=SAMPLE_RATE)
    synth.render_offline([(0.0, NoteMessage(60, 100)), (0.0, NoteMessage(64, 100, channel=3))], tail_s=0.2)
    assert synth.notes.held == {(0, 60), (3, 64)} and synth.active_voices > 0
    synth.all_notes_off()
    tail = synth.render(SAMPLE_RATE * 2)
    assert synth.notes.held == set() and synth.active_voices == 0
    assert np.max(np.abs(tail[-SAMPLE_RATE // 10:])) < 1e-3
    synth.close()
    synth.close()
    synth.send(NoteMessage(60, 100))  # after close: dropped and counted, never sounds
    assert synth.dropped == 1 and synth.active_voices == 0


def test_output_plays_through_jack_audio_driver(jack_server: str) -> None:
    require_module("fluidsynth", "pip install pyfluidsynth; it loads Debian fluidsynth's library")
    name = f"rt-out-{secrets.token_hex(2)}"
    with fs.FluidSynthOutput(audio_driver="jack", jack_server=jack_server, name=name) as synth:
        listing = subprocess.run(["jack_lsp", "-s", jack_server], capture_output=True, text=True).stdout
        assert f"{name}:left" in listing
        synth.send(NoteMessage(60, 100))
        time.sleep(0.2)
        assert synth.active_voices > 0
        with pytest.raises(PortError, match="offline"):
            synth.render(64)
    assert synth.closed and synth.notes.held == set()


@pytest.mark.usefixtures("needs_binary")
def test_engine_answer_through_fluidsynth_lands_in_the_wav_at_its_note_times(jack_server: str, tmp_path: Path) -> None:
    """The whole chain: a phrase over OSC, the engine's answer over JACK MIDI to a fluidsynth process
    recording a WAV; the answer's note-ons (also sent as OSC, from the same output thread) line up with
    the onsets heard in the audio."""
    from pythonosc.udp_client import SimpleUDPClient

    from realtime.app import LiveEngine
    from realtime.patch import parse_patch
    from test_run_osc import Listener, _free_port

    wav_path = tmp_path / "answer.wav"
    listener, osc_in = Listener(), _free_port()
    with fs.FluidSynthProcess(wav_path=wav_path, jack_server=jack_server, sample_rate=SAMPLE_RATE) as synth:
        patch = parse_patch({
            "engine": {"tempo_bpm": 100, "seed": 3},
            "continuation": {"phrase_end_ms": 300, "answer_notes": 12, "answer_beats": 12},
            "midi": {"backend": "jack", "output": synth.midi_port},
            "osc": {"port": osc_in, "out_host": "127.0.0.1", "out_port": listener.port},
        }, "test-fluidsynth")
        with LiveEngine(patch) as live:
            live.start()
            player = SimpleUDPClient("127.0.0.1", osc_in)
            for pitch in (67, 71, 74, 72, 71, 69, 67):
                player.send_message("/note/on", [pitch, 90])
                time.sleep(0.15)
                player.send_message("/note/off", [pitch])
            deadline = time.monotonic() + 10
            while live.mode.phrases < 1 or len(live.scheduler) or live.mode.answering:
                assert time.monotonic() < deadline, "the answer did not finish"
                time.sleep(0.05)
            time.sleep(0.8)  # let the last note ring into the file
            assert live.scheduler.late_count == 0
    sent = listener.ons()
    listener.server.shutdown()
    assert len(sent) >= 6, f"the engine answered with {len(sent)} notes"
    start = sent[0]
    sent = [t - start for t in sent]
    audio, rate = _read_wav(wav_path)
    detected = detect_onsets(audio, rate)
    lag = _best_offset(sent, detected)
    matched = [s for s in sent if any(abs(d - s - lag) <= TOLERANCE_S for d in detected)]
    assert len(matched) >= 0.8 * len(sent), f"onsets heard for {len(matched)} of {len(sent)} notes sent"
    before = audio[: max(0, int((lag - 0.05) * rate))]
    assert before.size == 0 or np.max(np.abs(before)) < 1e-3, "silence before the answer: the prompt is not echoed"
