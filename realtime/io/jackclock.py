"""Frames <-> the engine's clock for a JACK client: what lets a port write an event at its deadline's
frame and stamp an input with the time of its frame.

JACK-Client wraps neither `jack_get_cycle_times` nor `jack_get_time`; they are called through ctypes
on the very libjack JACK-Client loaded. The engine's clock is CLOCK_MONOTONIC and JACK's a clock of
its own (281 ms apart here, drifting by ppm): their offset is measured every 16th period.
"""

from __future__ import annotations

import ctypes

from ..clock import Clock


def libjack() -> ctypes.CDLL:
    """The libjack JACK-Client loaded, with the time functions it does not wrap declared (also for the
    receiving clients of tests and benchmarks, which convert frames with JACK's own jack_frames_to_time)."""
    import jack  # only when a JACK-Client port opens: `import realtime` must not need libjack

    lib = ctypes.CDLL(jack._libname)
    lib.jack_get_time.restype = ctypes.c_uint64
    lib.jack_frames_to_time.restype = ctypes.c_uint64
    lib.jack_frames_to_time.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_get_cycle_times.restype = ctypes.c_int
    lib.jack_get_cycle_times.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
                                         ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64),
                                         ctypes.POINTER(ctypes.c_float)]
    return lib


def client_pointer(client) -> ctypes.c_void_p:
    """A jack.Client's jack_client_t*, for the libjack functions called through ctypes."""
    import jack

    return ctypes.c_void_p(int(jack._ffi.cast("uintptr_t", client._ptr)))


class FrameClock:
    """Frames <-> engine nanoseconds for one JACK client, updated at the top of every period.

    JACK's cycle start times wobble by tens of microseconds (measured on the dummy driver: p99 35 us
    at 256 frames); a phase-and-rate filter over them gives a straight line, so events a steady
    tempo apart land a steady number of frames apart.
    """

    PHASE_GAIN, RATE_GAIN = 1 / 64, 1 / 256  # phase: our own smoothing; rate: JACK's DLL, lightly smoothed

    def __init__(self, client, clock: Clock) -> None:  # client: a jack.Client
        self._lib = libjack()
        self._client = client_pointer(client)
        self._clock = clock
        self.rate = client.samplerate
        self._frames, self._usecs = ctypes.c_uint32(), ctypes.c_uint64()
        self._next_usecs, self._period_usecs = ctypes.c_uint64(), ctypes.c_float()
        self._wraps, self._last_raw = 0, None
        self.offset_ns: float | None = None  # engine clock minus JACK's clock
        self.base_frame = 0  # a frame and its time on the filtered line
        self.base_ns = 0.0
        self.ns_per_frame = 1e9 / self.rate
        self.resets = 0
        self._cycles = 0

    @property
    def cycles(self) -> int:
        """Periods read so far: how a waiting thread tells that JACK's thread still runs."""
        return self._cycles

    def cycle(self, frames: int) -> int:
        """Read this period's start (a period of `frames`); returns its first frame (64-bit: JACK's 32-bit
        count unwrapped)."""
        lib = self._lib
        lib.jack_get_cycle_times(self._client, self._frames, self._usecs, self._next_usecs, self._period_usecs)
        raw = self._frames.value
        if self._last_raw is not None and raw < self._last_raw:
            self._wraps += 1 << 32
        self._last_raw = raw
        frame = raw + self._wraps
        self._cycles += 1
        if self.offset_ns is None or self._cycles % 16 == 0:  # the clocks drift by ppm at most
            before = lib.jack_get_time()
            now_ns = self._clock.now_ns()
            after = lib.jack_get_time()
            if after - before < 50:  # not preempted between the two reads
                offset = now_ns - (before + after) * 500.0
                self.offset_ns = offset if self.offset_ns is None else self.offset_ns + (offset - self.offset_ns) / 4
        start_ns = self._usecs.value * 1000.0 + (self.offset_ns or 0.0)
        # the rate: JACK's own DLL estimate of this period, which follows a driver that runs slow or fast
        # against the wall clock (the dummy driver does, by up to 9% on a loaded machine)
        jack_ns_per_frame = self._period_usecs.value * 1000.0 / frames if self._period_usecs.value > 0 else 0.0
        if not 0.5 < jack_ns_per_frame * self.rate / 1e9 < 2.0:
            jack_ns_per_frame = 1e9 / self.rate  # no estimate yet
        predicted = self.base_ns + (frame - self.base_frame) * self.ns_per_frame
        error = start_ns - predicted
        if self.base_frame == 0 or abs(error) > 3e6 or frame <= self.base_frame:  # start, xrun, restart
            self.base_frame, self.base_ns, self.ns_per_frame = frame, start_ns, jack_ns_per_frame
            self.resets += 1
            return frame
        self.ns_per_frame += (jack_ns_per_frame - self.ns_per_frame) * self.RATE_GAIN
        self.base_ns, self.base_frame = predicted + error * self.PHASE_GAIN, frame
        return frame

    def frame_at(self, at_ns: float) -> float:
        return self.base_frame + (at_ns - self.base_ns) / self.ns_per_frame

    def ns_at(self, frame: float) -> int:
        return int(self.base_ns + (frame - self.base_frame) * self.ns_per_frame)
