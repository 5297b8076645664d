"""The ports a session plays through: opened from the patch's [midi], [osc] and [synth], or in memory.

A mode's builder (realtime/modes.py) opens the outputs once its model is warm, then the inputs.
The session asks the set about its ports outside the loop (ports that vanished or came back, the
OSC input's warnings and drops, late writes of a port that keeps time) and closes it last, inputs
first, so every output ends silent. `PatchPorts` is what `realtime run` opens; `MemoryPorts` is a
keyboard and a recorder in memory for tests and benchmarks, with an OSC input on a free loopback
port if asked. A benchmark that wants some real ports overrides `open_outputs` or `open_inputs`.
"""

from __future__ import annotations

from contextlib import ExitStack

from .clock import Clock
from .engine.gamesetup import voice_osc_outputs
from .io.midiclock import RawSend
from .io.ports import RawListener
from .io.ports import FanOut, Input, MemoryInput, MemoryOutput, Output
from .patch import Patch
from .settings import VoiceSettings


class Ports:
    """Opened ports, closed together; what the session asks of them. Subclasses say what to open."""

    def __init__(self) -> None:
        self.inputs: list[Input] = []
        self.outputs: list[Output] = []
        self.osc = None  # the OSC input, once open: a mode registers its own addresses on it
        self.raw_send: RawSend | None = None  # raw MIDI bytes out (the MIDI clock), if an output can
        self.supervised: list = []  # ports with check(): polled for vanishing and returning
        self.osc_outputs: list = []  # OscOutputs: their send failures are warned and counted as drops
        self._stack = ExitStack()

    def open_outputs(self, clock: Clock, voices: tuple[VoiceSettings, ...] = ()) -> FanOut:
        """Open every output; `voices` are the game's (each with an osc_prefix may get its own OSC output)."""
        raise NotImplementedError

    def open_inputs(self, clock: Clock, raw_midi: RawListener | None = None) -> None:
        """Open every input; with `raw_midi`, the MIDI input also takes clock and transport bytes and hands them there."""
        raise NotImplementedError

    def add_output(self, port: Output, supervised: bool = False) -> Output:
        """A port opened elsewhere joins the set: closed with it, and polled if `supervised`."""
        self.outputs.append(port)
        return self._join(port, supervised)

    def add_input(self, port: Input, supervised: bool = False) -> Input:
        self.inputs.append(port)
        return self._join(port, supervised)

    def _join(self, port, supervised: bool):
        self._stack.callback(port.close)
        if supervised:
            self.supervised.append(port)
        return port

    # --- outside the loop -------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Ports that vanished or came back, and the OSC input's warnings (one line each), since the last call."""
        messages = [message for message in (port.check() for port in self.supervised) if message]
        if self.osc is not None:
            messages += self.osc.take_warnings()
        for port in self.osc_outputs:  # an OSC output warns once per kind of note it could not send
            messages += port.take_warnings()
        return messages

    def thread_notes(self) -> list[str]:
        """Why an input's own thread or process runs without SCHED_FIFO, if one does."""
        return []

    def drops(self) -> int:
        """Refused so far: bad or foreign OSC input, what the kernel dropped for the OSC socket, and notes
        an OSC output could not send."""
        refused = sum(self.osc.drops.values()) if self.osc is not None else 0
        return refused + sum(sum(port.errors.values()) for port in self.osc_outputs)

    def late(self) -> int:
        """Notes an output that keeps time (JACK) wrote after their frame."""
        return sum(getattr(port, "late", 0) for port in self.outputs)

    def close(self) -> None:
        """Idempotent: close inputs, then outputs (each ends its notes), then what they play into."""
        self._stack.close()


class PatchPorts(Ports):
    """What the patch's [midi], [osc] and [synth] sections describe, opened for real."""

    def __init__(self, patch: Patch) -> None:
        super().__init__()
        self.patch = patch

    def open_outputs(self, clock: Clock, voices: tuple[VoiceSettings, ...] = ()) -> FanOut:
        p = self.patch
        synth_port = None
        if p.synth.kind == "fluidsynth":
            from .io.fluidsynth import FluidSynthProcess

            synth = self._stack.enter_context(FluidSynthProcess(soundfont=p.synth.soundfont, gain=p.synth.gain))
            synth_port = synth.midi_port
        if p.midi.enabled:
            from .io.midibackend import open_output

            output_port = p.midi.output if p.midi.output is not None else synth_port
            midi = open_output(clock, output_port, p.midi.backend, client_name=p.midi.client_name,
                               latency_ms=p.midi.latency_ms)
            self.add_output(midi, supervised=True)
            self.raw_send = midi.send_raw
        if p.osc.out_host:
            from .io.osc import OscOutput

            self.osc_outputs.append(self.add_output(OscOutput(p.osc.out_host, p.osc.out_port)))
        if p.synth.kind == "builtin":
            from .io.livesynth import LiveSynth

            synth = LiveSynth()
            synth.open()
            self.add_output(synth, supervised=True)
        for port in voice_osc_outputs(voices, p.osc.out_host, p.osc.out_port):
            self.add_output(port)
            self.osc_outputs.append(port.output)  # a ChannelFilter around an OscOutput
        return FanOut(self.outputs)

    def open_inputs(self, clock: Clock, raw_midi: RawListener | None = None) -> None:
        p = self.patch
        if p.midi.enabled:
            from .io.midibackend import open_input

            port = open_input(clock, p.midi.input, p.midi.backend, client_name=p.midi.client_name,
                              accept_clock=raw_midi is not None)
            if raw_midi is not None:
                port.set_raw_listener(raw_midi)
            self.add_input(port, supervised=True)
        if p.osc.enabled:
            from .io.intake import OscIntake  # receives and parses in its own process (see intake.py)

            self.osc = self.add_input(OscIntake(clock, p.osc.host, p.osc.port, allow=p.osc.allow))

    def thread_notes(self) -> list[str]:
        return list(self.osc.realtime_notes) if self.osc is not None else []


class MemoryPorts(Ports):
    """A keyboard (`keyboard.play`) and a recorder (`recorder.sent`) in memory; `osc`: also an OSC input
    in this process on a free loopback port (its `address`); `raw_send`: where MIDI clock bytes go."""

    def __init__(self, osc: bool = False, raw_send: RawSend | None = None) -> None:
        super().__init__()
        self.with_osc, self.raw_send = osc, raw_send
        self.keyboard: MemoryInput | None = None
        self.recorder: MemoryOutput | None = None
        self.held_at_close: set[tuple[int, int]] | None = None  # what the recorder still held when closed

    def open_outputs(self, clock: Clock, voices: tuple[VoiceSettings, ...] = ()) -> FanOut:
        self.recorder = self.add_output(MemoryOutput(clock, "recorder"))
        return FanOut(self.outputs)

    def open_inputs(self, clock: Clock, raw_midi: RawListener | None = None) -> None:
        self.keyboard = self.add_input(MemoryInput(clock, "keyboard"))
        if self.with_osc:
            from .io.osc import OscInput

            self.osc = self.add_input(OscInput(clock, "127.0.0.1", 0))

    def close(self) -> None:
        if self.recorder is not None and self.held_at_close is None:
            self.held_at_close = self.recorder.held  # before the recorder's own close ends them
        super().close()
