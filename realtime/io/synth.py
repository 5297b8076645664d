"""The built-in synth: hear (and test) note events without any external instrument.

`render` turns (onset_s, duration_s, pitch, velocity) tuples into mono float32 audio,
`write_wav` saves it, `play` sends it to the sound card when there is one, and
`detect_onsets` finds where the sound gets louder so tests can check audio against MIDI.
"""

from __future__ import annotations

import wave
from contextlib import suppress
from pathlib import Path

import numpy as np

ATTACK_S = 0.005  # short attack: onsets are sharp and detectable
DECAY_S = 0.12  # time constant of the fall from the attack peak to the sustain level
SUSTAIN = 0.45
RELEASE_S = 0.06
PARTIALS = ((1, 1.0), (2, 0.4), (3, 0.18))  # (harmonic, weight): a soft, organ-ish tone
PEAK = 0.8


def _voice(duration_s: float, pitch: int, velocity: int, sample_rate: int) -> np.ndarray:
    """One note's samples, envelope included, so notes can be mixed by simple addition."""
    n = int(round((duration_s + RELEASE_S) * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    freq = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    nyquist = sample_rate / 2.0
    tone = np.zeros(n)
    for harmonic, weight in PARTIALS:
        if harmonic * freq < nyquist:  # skip partials that would alias
            tone += weight * np.sin(2.0 * np.pi * harmonic * freq * t)
    held = np.where(
        t < ATTACK_S,
        t / ATTACK_S,
        SUSTAIN + (1.0 - SUSTAIN) * np.exp(-(t - ATTACK_S) / DECAY_S),
    )
    level_at_end = float(np.interp(duration_s, t, held)) if n else 0.0
    release = level_at_end * np.clip(1.0 - (t - duration_s) / RELEASE_S, 0.0, 1.0)
    envelope = np.where(t < duration_s, held, release)
    gain = 0.25 * (velocity / 127.0)
    return gain * envelope * tone


def render(notes: list[tuple[float, float, int, int]], sample_rate: int = 44100, tail_s: float = 0.5) -> np.ndarray:
    """Offline render of (onset_s, duration_s, pitch, velocity) tuples to mono float32 in [-1, 1]."""
    end = max((onset + duration for onset, duration, _, _ in notes), default=0.0)
    out = np.zeros(int(round((end + tail_s) * sample_rate)), dtype=np.float64)
    for onset, duration, pitch, velocity in notes:
        if duration <= 0 or velocity <= 0:
            continue
        voice = _voice(duration, pitch, velocity, sample_rate)
        start = int(round(max(0.0, onset) * sample_rate))
        stop = min(len(out), start + len(voice))
        if stop > start:
            out[start:stop] += voice[: stop - start]
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    if peak > 1.0:  # only ever scale down; silence stays silence
        out *= PEAK / peak
    return out.astype(np.float32)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Save mono audio as 16-bit PCM so any player can open the render."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())


def play(samples: np.ndarray, sample_rate: int) -> str | None:
    """Play and block until done; return why audio is off instead of raising on bare machines."""
    try:
        import sounddevice as sd
    except OSError:
        return "audio off: sounddevice could not load PortAudio (install Debian libportaudio2)"
    except ImportError:
        return "audio off: sounddevice is not installed (pip install sounddevice)"
    except Exception as err:  # PortAudio loaded but refused to start
        return f"audio off: PortAudio failed to start ({err})"
    try:
        if not sd._initialized:  # an earlier call terminated PortAudio
            sd._initialize()
        try:
            device = sd.query_devices(kind="output")
        except (sd.PortAudioError, ValueError):
            return "audio off: no output device (no sound card)"
        if int(device.get("max_output_channels", 0)) < 1:
            return "audio off: no output device (no sound card)"
        data = np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(-1, 1))
        with sd.OutputStream(samplerate=sample_rate, channels=1, dtype="float32") as stream:
            stream.write(data)  # blocking write; leaving the block drains and closes the stream
        return None
    except sd.PortAudioError as err:
        return f"audio off: {str(err).splitlines()[0] if str(err) else 'PortAudio error'}"
    finally:
        for _ in range(sd._initialized):  # so PortAudio does not abort at interpreter exit
            with suppress(sd.PortAudioError):
                sd._terminate()


def onset_envelope(samples: np.ndarray, sample_rate: int, hop_ms: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """RMS over 20 ms windows centred on each hop: a loudness curve for spotting loud regions."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    hop = max(1, int(round(sample_rate * hop_ms / 1000.0)))
    half = max(1, int(round(sample_rate * 0.010)))  # 20 ms: longer than a low note's period
    centres = np.arange(len(x) // hop + 1) * hop
    cumulative = np.concatenate(([0.0], np.cumsum(x * x)))
    lo, hi = np.clip(centres - half, 0, len(x)), np.clip(centres + half, 0, len(x))
    energy = (cumulative[hi] - cumulative[lo]) / np.maximum(hi - lo, 1)
    return centres / sample_rate, np.sqrt(energy)


def onset_strength(
    samples: np.ndarray, sample_rate: int, hop_ms: float = 5.0, window_ms: float = 30.0, lag: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Summed rise of log-magnitude per frequency bin: unlike broadband RMS, a soft note under a
    held chord still shows, and beating between held partials does not."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    hop = max(1, int(round(sample_rate * hop_ms / 1000.0)))
    size = max(8, int(round(sample_rate * window_ms / 1000.0)))
    count = len(x) // hop + 1
    padded = np.concatenate((np.zeros(size // 2), x, np.zeros(size - size // 2 + hop)))
    starts = np.arange(count) * hop
    strength = np.zeros(count)
    window = np.hanning(size)
    blocks: list[np.ndarray] = []
    for first in range(0, count, 256):  # blocks of frames bound the memory of long renders
        index = starts[first : first + 256, None] + np.arange(size)[None, :]
        magnitude = np.abs(np.fft.rfft(padded[index] * window, axis=1))
        blocks.append(magnitude)
    magnitude = np.concatenate(blocks) if blocks else np.zeros((0, size // 2 + 1))
    top = float(magnitude.max()) if magnitude.size else 0.0
    if top > 0.0:
        level = np.log1p(100.0 * magnitude / top)
        spread = level.copy()  # max over neighbouring bins: a slightly moving partial is no onset
        spread[:, 1:] = np.maximum(spread[:, 1:], level[:, :-1])
        spread[:, :-1] = np.maximum(spread[:, :-1], level[:, 1:])
        before = np.concatenate((np.repeat(spread[:1], lag, axis=0), spread[:-lag]))
        strength = np.maximum(level - before, 0.0).sum(axis=1)
    return starts / sample_rate, strength


def detect_onsets(
    samples: np.ndarray,
    sample_rate: int,
    hop_ms: float = 5.0,
    threshold: float = 0.05,
    average_s: float = 0.1,
    min_gap_s: float = 0.04,
) -> list[float]:
    """Onset times (s) where the sound gets sharply louder, so tests can line audio up with MIDI."""
    times, strength = onset_strength(samples, sample_rate, hop_ms)
    top = float(strength.max()) if len(strength) else 0.0
    if top <= 0.0 or len(strength) < 3:
        return []
    novelty = strength / top
    width = 2 * max(1, int(round(average_s * 1000.0 / hop_ms))) + 1
    local = np.convolve(novelty, np.ones(width) / width, mode="same")
    middle = novelty[1:-1]
    peaks = np.flatnonzero((middle > local[1:-1] + threshold) & (middle >= novelty[:-2]) & (middle > novelty[2:])) + 1
    step = times[1] - times[0]
    onsets: list[tuple[float, float]] = []  # (time, strength)
    for i in peaks:
        a, b, c = novelty[i - 1], novelty[i], novelty[i + 1]
        curve = a - 2.0 * b + c
        when = float(times[i] + (0.5 * (a - c) / curve if curve else 0.0) * step)  # parabolic peak
        if onsets and when - onsets[-1][0] < min_gap_s:
            if b > onsets[-1][1]:
                onsets[-1] = (when, b)
            continue
        onsets.append((when, b))
    return [when for when, _ in onsets]
