"""The built-in synth played live: note messages start and release voices mixed in the audio callback.

Callback contract (sounddevice's own): the callback never blocks, takes a lock, logs or allocates
arrays. `send` hands (key, velocity) pairs over a deque, whose append and popleft are atomic; the
callback drains it at the start of each block, so a note sounds at most one block after it was sent.
Voices and scratch buffers are allocated once, in the constructor.

Device loss: when the device goes away under a running stream (measured with PortAudio on JACK: the
server dies), the stream stops by itself and every later PortAudio call on it (stop, abort, close,
even sounddevice's exit handler) blocks forever. `check()` notices the stopped stream, stops sending
to it, says so once, and abandons it on a daemon thread with sounddevice's exit handler unregistered,
so the engine plays on (MIDI and OSC outputs are unaffected) and the process can still exit.
"""

from __future__ import annotations

import atexit
import math
import threading
import time
from collections import deque

import numpy as np

from ..errors import PortError
from ..events import NoteMessage
from .ports import HeldNotes
from .synth import ATTACK_S, DECAY_S, PARTIALS, RELEASE_S, SUSTAIN

MAX_VOICES = 24
CHUNK_FRAMES = 1024  # scratch size; longer callback blocks are mixed in chunks of this
RELEASE_EVERY_VOICE = -1  # a pending key meaning "release everything": the panic that needs no bookkeeping


class _Voice:
    __slots__ = ("sounding", "key", "released", "age", "release_age", "release_level", "phase", "step", "gain",
                 "partials")

    def __init__(self) -> None:
        self.sounding, self.released, self.key = False, False, 0
        self.age = self.release_age = 0  # samples since note-on / note-off
        self.release_level = self.phase = self.step = self.gain = 0.0
        self.partials = 0  # how many of PARTIALS lie below Nyquist


class LiveSynth:
    """An Output that plays the built-in voice on the sound card (or JACK) through sounddevice."""

    def __init__(self, name: str = "live-synth", sample_rate: int | None = None, max_voices: int = MAX_VOICES):
        self.name = name
        self.sample_rate = sample_rate  # None: the device's own rate (JACK insists on its rate)
        self.notes = HeldNotes()
        self.dropped = self.underflows = 0
        self.closed = False
        self._pending: deque[tuple[int, int]] = deque()
        self._voices = [_Voice() for _ in range(max_voices)]
        self._ramp = np.arange(CHUNK_FRAMES, dtype=np.float64)
        self._time, self._envelope, self._phase, self._partial, self._tone, self._mix = (
            np.zeros(CHUNK_FRAMES) for _ in range(6))
        self._stream = None
        self._sounddevice = None
        self.lost = False  # the device went away under a running stream

    def open(self, device: int | str | None = None) -> LiveSynth:
        """Start the audio stream on `device` (sounddevice's name or index; None: the default output)."""
        if self._stream is not None:
            return self
        sd = _import_sounddevice()
        try:
            if not sd._initialized:  # someone terminated PortAudio (realtime.io.synth.play does)
                sd._initialize()
            info = sd.query_devices(device, "output")
        except (ValueError, sd.PortAudioError) as err:
            named = "" if device is None else f" {device!r}"
            raise PortError(f"audio off: no output device{named} ({err})") from err
        channels = min(2, int(info["max_output_channels"]))
        if channels < 1:
            raise PortError(f"audio off: {info['name']} has no output channels")
        self.sample_rate = int(self.sample_rate or info["default_samplerate"])
        try:
            stream = sd.OutputStream(samplerate=self.sample_rate, channels=channels, dtype="float32",
                                     device=device, callback=self._callback, latency="low")
            stream.start()
        except sd.PortAudioError as err:
            raise PortError(f"audio off: cannot play on {info['name']} ({err})") from err
        self._stream, self._sounddevice, self.closed, self.lost = stream, sd, False, False
        self.device_name = info["name"]
        return self

    def check(self) -> str | None:
        """Notice a device that went away (the stream stopped by itself); one line to show, or None."""
        stream = self._stream
        if stream is None or stream.active:
            return None
        self._lose(stream)
        return (f"audio device {self.device_name} went away: the built-in synth is silent from now on "
                "(MIDI and OSC outputs play on); restart to get audio back")

    def _lose(self, stream) -> None:
        self.lost = True
        self._stream = None  # send() drops from now on: nothing queues for a callback that never runs
        self._pending.clear()
        self.notes.releases()
        atexit.unregister(self._sounddevice._exit_handler)  # it would stop this stream at exit: forever
        threading.Thread(target=_abandon, args=(stream,), name="audio-abandon", daemon=True).start()

    def send(self, message: NoteMessage) -> None:
        if self._stream is None:  # not open, or closed: a note that can never end must not start
            self.dropped += 1
            return
        self.notes.track(message)
        self._pending.append((message.channel * 128 + message.pitch, message.velocity))

    def all_notes_off(self) -> None:
        self.notes.releases()
        if self._stream is not None:
            self._pending.append((RELEASE_EVERY_VOICE, 0))

    @property
    def active_voices(self) -> int:
        return sum(voice.sounding for voice in self._voices)

    def close(self, timeout_s: float = 1.0) -> None:
        """Release every voice, let the releases ring out, stop the stream; safe to call twice."""
        if self._stream is None:
            self.closed = True
            return
        self.all_notes_off()
        deadline = time.monotonic() + max(timeout_s, RELEASE_S)
        while (self._pending or self.active_voices) and time.monotonic() < deadline and self._stream.active:
            time.sleep(0.005)
        stream = self._stream
        if not stream.active:  # the device went away under it: PortAudio would block in stop()
            self._lose(stream)
        else:
            self._stream = None
            try:
                stream.stop()
                stream.close()
            except self._sounddevice.PortAudioError:
                pass  # the device went away; the voices are cleared below all the same
        for voice in self._voices:  # the callback has stopped: nothing races these writes
            voice.sounding = False
        self._pending.clear()
        self.closed = True

    def __enter__(self) -> LiveSynth:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- audio thread: everything below runs inside the sounddevice callback ---

    def _callback(self, outdata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        if getattr(status, "output_underflow", False):
            self.underflows += 1
        while self._pending:
            key, velocity = self._pending.popleft()
            if velocity:
                self._start(key, velocity)
            else:
                self._release(key)
        for first in range(0, frames, CHUNK_FRAMES):
            count = min(CHUNK_FRAMES, frames - first)
            mix = self._mix[:count]
            mix.fill(0.0)
            for voice in self._voices:
                if voice.sounding:
                    self._add_voice(voice, count, mix)
            np.clip(mix, -1.0, 1.0, out=mix)
            outdata[first:first + count] = mix[:, None]

    def _start(self, key: int, velocity: int) -> None:
        self._release(key)  # a retriggered key lets its earlier voice ring out
        voice = next((voice for voice in self._voices if not voice.sounding), None)
        if voice is None:  # all busy: steal the quietest, the one furthest into its release, else the oldest
            voice = max(self._voices, key=lambda v: (v.released, v.release_age, v.age))
        freq = 440.0 * 2.0 ** ((key % 128 - 69) / 12.0)
        voice.sounding, voice.released, voice.key = True, False, key
        voice.age = voice.release_age = 0
        voice.phase, voice.step = 0.0, freq / self.sample_rate
        voice.gain = 0.25 * velocity / 127.0
        voice.partials = sum(1 for harmonic, _ in PARTIALS if harmonic * freq < self.sample_rate / 2.0)

    def _release(self, key: int) -> None:
        for voice in self._voices:
            if voice.sounding and not voice.released and (key == RELEASE_EVERY_VOICE or voice.key == key):
                voice.released, voice.release_age = True, 0
                voice.release_level = self._held_level(voice.age)

    def _held_level(self, age: float) -> float:
        """The envelope before release (attack ramp, then decay to the sustain level), at one sample."""
        attack, decay = ATTACK_S * self.sample_rate, DECAY_S * self.sample_rate
        return min(age / attack, 1.0) * (SUSTAIN + (1.0 - SUSTAIN) * math.exp(-max(age - attack, 0.0) / decay))

    def _add_voice(self, voice: _Voice, count: int, mix: np.ndarray) -> None:
        ramp, t, envelope = self._ramp[:count], self._time[:count], self._envelope[:count]
        if voice.released:  # linear fall from the level at note-off to silence
            np.add(ramp, voice.release_age, out=envelope)
            envelope *= -1.0 / (RELEASE_S * self.sample_rate)
            envelope += 1.0
            np.clip(envelope, 0.0, 1.0, out=envelope)
            envelope *= voice.release_level
        else:  # the same shape as _held_level, one sample per element
            attack, decay = ATTACK_S * self.sample_rate, DECAY_S * self.sample_rate
            np.add(ramp, voice.age, out=t)
            np.subtract(t, attack, out=envelope)
            np.maximum(envelope, 0.0, out=envelope)
            envelope *= -1.0 / decay
            np.exp(envelope, out=envelope)
            envelope *= 1.0 - SUSTAIN
            envelope += SUSTAIN
            t *= 1.0 / attack
            np.minimum(t, 1.0, out=t)
            envelope *= t
        phase, partial, tone = self._phase[:count], self._partial[:count], self._tone[:count]
        np.multiply(ramp, voice.step, out=phase)
        phase += voice.phase
        phase *= 2.0 * math.pi
        tone.fill(0.0)
        for harmonic, weight in PARTIALS[: voice.partials]:  # PARTIALS rise in pitch
            np.multiply(phase, harmonic, out=partial)
            np.sin(partial, out=partial)
            partial *= weight
            tone += partial
        tone *= envelope
        tone *= voice.gain
        mix += tone
        voice.age += count
        voice.phase = (voice.phase + count * voice.step) % 1.0
        if voice.released:
            voice.release_age += count
            voice.sounding = voice.release_age < RELEASE_S * self.sample_rate


def _abandon(stream) -> None:
    """Close a stream whose device went away; on JACK this never returns, so it runs on a daemon thread."""
    try:
        stream.abort()
        stream.close()
    except Exception:  # noqa: BLE001 - whatever PortAudio says now, the stream is gone
        pass


def _import_sounddevice():
    try:
        import sounddevice
    except OSError as err:
        why = "audio off: sounddevice cannot load PortAudio"
        raise PortError(f"{why} (install Debian package libportaudio2)") from err
    except ImportError as err:
        raise PortError("audio off: sounddevice is not installed (pip install sounddevice)") from err
    return sounddevice
