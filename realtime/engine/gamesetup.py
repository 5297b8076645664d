"""Build a game mode from a patch: the batched model, the voices, the tempo clock and the schedulers."""

from __future__ import annotations

from ..clock import Clock, TempoClock
from ..io.midiclock import RawOutput, RawSend
from ..io.ports import Output
from ..model.runner import ModelRunner
from ..model.sampling import resolve_sampling
from ..patch import Patch
from ..scheduler import Scheduler
from .game import GameMode
from .voices import VoiceBank


def build_game_mode(patch: Patch, clock: Clock, output: Output, raw_send: RawSend | None = None,
                    model: str | None = None) -> tuple[GameMode, Scheduler, Scheduler | None]:
    """(mode, note scheduler, clock scheduler or None); nothing is started."""
    game = patch.game
    runner = ModelRunner(model or patch.model.name, batch=len(game.voices))
    temperature, top_p = resolve_sampling(runner.meta, patch.model.temperature, patch.model.top_p)
    bank = VoiceBank(runner, patch.engine.seed, temperature, top_p)
    scheduler = Scheduler(output, clock, late_tolerance_ns=int(patch.engine.budget_ms * 1e6))
    clock_scheduler = None
    if game.midi_clock_out and raw_send is not None:
        clock_scheduler = Scheduler(RawOutput(raw_send), clock, late_tolerance_ns=int(patch.engine.budget_ms * 1e6))
    tempo = TempoClock(patch.engine.tempo_bpm, game.beats_per_bar, clock.now_ns())
    mode = GameMode(bank, scheduler, game, tempo, clock_scheduler, clock_in=game.midi_clock_in)
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


def voice_osc_outputs(patch: Patch) -> list[Output]:
    """With [osc] out_host set, each voice with an osc_prefix also sends PREFIX/note/on and /note/off."""
    if not patch.osc.out_host:
        return []
    from ..io.osc import OscOutput

    return [ChannelFilter(OscOutput(patch.osc.out_host, patch.osc.out_port, voice.osc_prefix), voice.channel - 1)
            for voice in patch.game.voices if voice.osc_prefix]
