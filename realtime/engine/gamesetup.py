"""Build a game mode from the engine settings: the batched model, the voices, the tempo clock and the schedulers.

realtime/modes.py calls these for a session (model first, then the ports); tests call them for a rig.
"""

from __future__ import annotations

from ..clock import Clock, TempoClock
from ..io.midiclock import RawOutput, RawSend
from ..io.ports import Output
from ..model.generator import ModelRunner
from ..scheduler import Scheduler
from ..settings import EngineSettings, VoiceSettings, sampling
from .game import GameMode
from .voices import VoiceBank


def load_voice_bank(settings: EngineSettings, model: str | None = None) -> VoiceBank:
    """The batched model, one row per voice, with its sampler compiled: what can be made before any port opens."""
    runner = ModelRunner(model or settings.model.name, batch=len(settings.game.voices),
                         guidance=settings.model.style_guidance)
    temperature, top_p = sampling(runner.meta, settings.model.temperature, settings.model.top_p)
    return VoiceBank(runner, settings.seed, temperature, top_p)


def build_game_mode(settings: EngineSettings, clock: Clock, output: Output, raw_send: RawSend | None = None,
                    model: str | None = None, bank: VoiceBank | None = None
                    ) -> tuple[GameMode, Scheduler, Scheduler | None]:
    """(mode, note scheduler, clock scheduler or None); nothing is started. `bank`: one load_voice_bank made."""
    game = settings.game
    bank = bank if bank is not None else load_voice_bank(settings, model)
    late_tolerance_ns = int(settings.budget_ms * 1e6)
    scheduler = Scheduler(output, clock, late_tolerance_ns=late_tolerance_ns)
    clock_scheduler = None
    if game.midi_clock_out and raw_send is not None:
        clock_scheduler = Scheduler(RawOutput(raw_send), clock, late_tolerance_ns=late_tolerance_ns)
    tempo = TempoClock(settings.tempo_bpm, game.beats_per_bar, clock.now_ns())
    mode = GameMode(bank, scheduler, game, tempo, clock_scheduler, clock_in=game.midi_clock_in, style=settings.style)
    return mode, scheduler, clock_scheduler


class ChannelFilter:
    """An output that passes on only one MIDI channel's notes: one OSC address per voice."""

    def __init__(self, output: Output, channel: int) -> None:
        self.output, self.channel = output, channel
        self.name = f"{output.name} (channel {channel + 1})"

    def send(self, message) -> None:
        if getattr(message, "channel", None) == self.channel:
            self.output.send(message)

    def all_notes_off(self) -> None:
        self.output.all_notes_off()

    def close(self) -> None:
        self.output.close()


def voice_osc_outputs(voices: tuple[VoiceSettings, ...], out_host: str | None, out_port: int) -> list[Output]:
    """With an OSC out host, each voice with an osc_prefix also sends PREFIX/note/on and /note/off."""
    if not out_host:
        return []
    from ..io.osc import OscOutput

    return [ChannelFilter(OscOutput(out_host, out_port, voice.osc_prefix), voice.channel)
            for voice in voices if voice.osc_prefix]
