"""FluidSynth as an instrument: a `fluidsynth` process fed over JACK MIDI, or in-process via pyfluidsynth.

The process plays to JACK, or records a WAV file while it runs. FluidSynth's `file` audio driver
renders on a timer paced by the wall clock, so live MIDI lands in the WAV where it was played
(measured here: onsets within 2 ms of their send times, after one constant offset).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

import numpy as np

from ..childproc import die_with_parent
from ..errors import PortError
from ..events import NoteMessage
from .ports import HeldNotes

SOUNDFONT_ENV = "REALTIME_SOUNDFONT"
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts",
                  "/usr/local/share/soundfonts", "/opt/homebrew/share/soundfonts", "~/.local/share/soundfonts")
PREFERRED_SOUNDFONTS = ("FluidR3_GM.sf2", "default-GM.sf2", "default.sf2", "FluidR3_GM.sf3", "default-GM.sf3")
DEFAULT_GAIN = 0.7  # FluidSynth's own 0.2 is too quiet for one melodic line
DRUM_CHANNEL = 9
QUIT_TIMEOUT_S = 5.0


def find_soundfont() -> Path:
    """The SoundFont to play: $REALTIME_SOUNDFONT, else a General MIDI font in the usual places."""
    chosen = os.environ.get(SOUNDFONT_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise PortError(f"${SOUNDFONT_ENV}={chosen} is not a file: point it at an .sf2 SoundFont or unset it")
        return path
    folders = [Path(folder).expanduser() for folder in SOUNDFONT_DIRS]
    for folder in folders:
        for name in PREFERRED_SOUNDFONTS:
            if (folder / name).is_file():
                return folder / name
    for folder in folders:
        found = sorted(folder.glob("*.sf[23]")) if folder.is_dir() else []
        if found:
            return found[0]
    raise PortError(f"no SoundFont found: install Debian package fluid-soundfont-gm or set ${SOUNDFONT_ENV}")


def _require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PortError(f"{name} not found on PATH: install Debian package {package}")
    return path


class FluidSynthProcess:
    """A `fluidsynth` process whose JACK MIDI input is `midi_port`; it plays to JACK or records `wav_path`.

    Choose its instrument with a MIDI program change sent over that port.
    """

    def __init__(self, soundfont: str | Path | None = None, *, wav_path: str | Path | None = None,
                 jack_server: str | None = None, client_name: str | None = None, sample_rate: int = 48000,
                 gain: float = DEFAULT_GAIN, reverb: bool = False, autoconnect_audio: bool = True) -> None:
        self.soundfont = Path(soundfont) if soundfont else find_soundfont()
        self.wav_path = Path(wav_path) if wav_path else None
        self.jack_server = jack_server or ""  # "" means $JACK_DEFAULT_SERVER or "default"
        self.client_name = client_name or f"realtime-fluidsynth-{os.getpid()}-{secrets.token_hex(2)}"
        self.sample_rate, self.gain, self.reverb = sample_rate, gain, reverb
        self.autoconnect_audio = autoconnect_audio
        self.midi_port = f"{self.client_name}:midi_00"
        self.audio_ports = () if self.wav_path else (f"{self.client_name}:left", f"{self.client_name}:right")
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None

    def command(self, binary: str = "fluidsynth") -> list[str]:
        """The fluidsynth command line: MIDI from JACK, audio to JACK or to the WAV file."""
        on_off = "1" if self.reverb else "0"
        args = [binary, "-m", "jack", "-o", f"midi.jack.id={self.client_name}", "-g", str(self.gain),
                "-r", str(self.sample_rate), "-o", f"synth.reverb.active={on_off}",
                "-o", f"synth.chorus.active={on_off}"]
        if self.jack_server:
            args += ["-o", f"midi.jack.server={self.jack_server}"]
        if self.wav_path:
            args += ["-a", "file", "-o", f"audio.file.name={self.wav_path}", "-o", "audio.file.type=wav"]
        else:  # with the same id, the JACK audio and MIDI drivers share one client
            args += ["-a", "jack", "-o", f"audio.jack.id={self.client_name}"]
            args += ["-o", f"audio.jack.autoconnect={int(self.autoconnect_audio)}"]
            if self.jack_server:
                args += ["-o", f"audio.jack.server={self.jack_server}"]
        return args + [str(self.soundfont)]

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 10.0) -> FluidSynthProcess:
        """Start fluidsynth and return once its MIDI port is on the JACK graph."""
        if self.running:
            return self
        binary = _require_binary("fluidsynth", "fluidsynth")
        _require_binary("jack_lsp", "jackd2")
        if self.wav_path:
            self.wav_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, JACK_NO_START_SERVER="1")  # fail fast instead of launching a stray jackd
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(self.command(binary), stdin=subprocess.PIPE, stdout=self._log,
                                         stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout_s
        while self.midi_port not in self.jack_ports():
            log = self._log_lines()
            if self._process.poll() is not None or any("no MIDI input" in line for line in log):
                reason = ([line for line in log if "error" in line.lower()] or log or ["no output"])[-1]
                self.stop()
                raise PortError(f"fluidsynth could not start its JACK MIDI input: {reason} (is JACK running?)")
            if time.monotonic() > deadline:
                self.stop()
                raise PortError(f"fluidsynth did not open JACK port {self.midi_port} within {timeout_s:g} s")
            time.sleep(0.05)
        return self

    def _server_args(self) -> list[str]:
        return ["-s", self.jack_server] if self.jack_server else []

    def jack_ports(self) -> list[str]:
        """Every port on this process's JACK server (empty when the server is gone)."""
        try:
            listing = subprocess.run(["jack_lsp", *self._server_args()], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return []
        return [line.strip() for line in listing.stdout.splitlines() if line.strip()]

    def connect_from(self, source_port: str) -> None:
        """Connect a JACK MIDI output (e.g. the engine's rtmidi port) to this synth's input."""
        connect = [_require_binary("jack_connect", "jackd2"), *self._server_args(), source_port, self.midi_port]
        done = subprocess.run(connect, capture_output=True, text=True)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["jack_connect failed"])[-1]
            raise PortError(f"cannot connect {source_port} to {self.midi_port}: {why}")

    def stop(self) -> int | None:
        """Quit through fluidsynth's shell so the WAV is finished (SIGTERM leaves it empty)."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            with suppress(OSError):  # BrokenPipeError when it went by itself
                process.stdin.write(b"quit\n")
                process.stdin.flush()
            try:
                process.wait(QUIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # a stuck shell: kill it, though the WAV may be unfinished
                process.kill()
                process.wait()
        with suppress(OSError):
            process.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode

    def _log_lines(self) -> list[str]:
        if self._log is None:
            return []
        fd = self._log.fileno()  # pread: the child shares this file's offset, so never move it
        text = os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")
        return [line.strip() for line in text.splitlines() if line.strip()]

    def __enter__(self) -> FluidSynthProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _import_pyfluidsynth():
    try:
        import fluidsynth
    except ModuleNotFoundError as err:
        raise PortError("pyfluidsynth is not installed: pip install pyfluidsynth") from err
    except (ImportError, OSError) as err:  # installed, but libfluidsynth is missing
        why = f"pyfluidsynth cannot load libfluidsynth ({err})"
        raise PortError(f"{why}: install Debian package libfluidsynth3") from err
    return fluidsynth


class FluidSynthOutput:
    """FluidSynth in this process: an Output that plays through an audio driver or renders offline."""

    def __init__(self, soundfont: str | Path | None = None, *, audio_driver: str | None = None,
                 jack_server: str | None = None, name: str = "fluidsynth", sample_rate: int = 48000,
                 gain: float = DEFAULT_GAIN, program: int = 0, reverb: bool = False) -> None:
        fluidsynth = _import_pyfluidsynth()
        path = Path(soundfont) if soundfont else find_soundfont()
        self.name, self.sample_rate = name, sample_rate
        self.notes = HeldNotes()
        self.closed, self.dropped = False, 0
        self._synth = fluidsynth.Synth(gain=gain, samplerate=float(sample_rate))
        self._synth.setting("synth.reverb.active", int(reverb))
        self._synth.setting("synth.chorus.active", int(reverb))
        if self._synth.sfload(str(path)) < 0:
            self._synth.delete()
            raise PortError(f"{path}: FluidSynth could not load this SoundFont")
        self._synth.program_reset()  # every channel gets its General MIDI default, drums on channel 10
        for channel in range(16):
            if program and channel != DRUM_CHANNEL:
                self._synth.program_change(channel, program)
        if audio_driver:
            self._synth.setting("audio.driver", audio_driver)
            if audio_driver == "jack":
                self._synth.setting("audio.jack.id", name)
                self._synth.setting("audio.jack.server", jack_server or "")
                self._synth.setting("audio.jack.autoconnect", 1)
            driver = fluidsynth.new_fluid_audio_driver(self._synth.settings, self._synth.synth)
            if not driver:
                self._synth.delete()
                raise PortError(f"FluidSynth audio driver {audio_driver!r} did not start (no device or server?)")
            self._synth.audio_driver = driver

    def send(self, message: NoteMessage) -> None:
        if self.closed:
            self.dropped += 1
            return
        self.notes.track(message)
        if message.is_on:
            self._synth.noteon(message.channel, message.pitch, message.velocity)
        else:
            self._synth.noteoff(message.channel, message.pitch)

    def all_notes_off(self) -> None:
        channels = sorted(self.notes.channels_used)
        for message in self.notes.releases():
            self._synth.noteoff(message.channel, message.pitch)
        for channel in channels:
            self._synth.cc(channel, 64, 0)  # a held sustain pedal would keep the released notes sounding
            self._synth.all_notes_off(channel)

    @property
    def active_voices(self) -> int:
        return 0 if self.closed else int(self._synth.get_active_voice_count())

    def render(self, frames: int) -> np.ndarray:
        """The next `frames` samples as mono float32 (only without an audio driver)."""
        if self._synth.audio_driver:
            raise PortError(f"{self.name}: cannot render offline while an audio driver plays the synth")
        if frames <= 0:
            return np.zeros(0, dtype=np.float32)
        stereo = self._synth.get_samples(frames).reshape(-1, 2).astype(np.float32) / 32768.0
        return stereo.mean(axis=1)

    def render_offline(self, events: Iterable[tuple[float, NoteMessage]], tail_s: float = 1.0) -> np.ndarray:
        """Play (time_s, message) pairs on a virtual timeline and return the mono float32 audio."""
        chunks, frame = [], 0
        for at_s, message in sorted(events, key=lambda event: event[0]):
            target = int(round(at_s * self.sample_rate))
            if target > frame:
                chunks.append(self.render(target - frame))
                frame = target
            self.send(message)
        chunks.append(self.render(int(round(tail_s * self.sample_rate))))
        return np.concatenate(chunks)

    def close(self) -> None:
        """End every held note, silence every channel and free the synth; safe to call twice."""
        if self.closed:
            return
        self.all_notes_off()
        for channel in range(16):
            self._synth.all_sounds_off(channel)
        self.closed = True
        self._synth.delete()

    def __enter__(self) -> FluidSynthOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
