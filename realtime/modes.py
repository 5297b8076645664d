"""Which mode a session runs: `MODES` maps the patch's [engine] mode to the builder that makes it.

A builder makes the mode's model first and warms it (whole notes decided, the sampler compiled),
so nothing is compiled under the first notes and a model that cannot load opens no port; then it
opens the outputs through the session's `Ports` (realtime/patchports.py), makes the note scheduler
and the mode, and opens the inputs with what the mode hears beyond notes (the game's OSC addresses
and MIDI clock). It returns the mode and its output threads, the notes' first. A new mode adds a
builder here and implements `Mode` (realtime/engine/engine.py); the session does not change.
"""

from __future__ import annotations

from collections.abc import Callable

from .clock import Clock
from .engine.accompany import make_accompany
from .engine.answershape import AnswerShape
from .engine.continuation import Continuation
from .engine.engine import Mode
from .engine.harmonize import make_harmonize
from .engine.leadsheet import LeadSheet
from .engine.trade import Trade
from .leadsheet.comp import CompStyle
from .leadsheet.live import BarPlanner
from .leadsheet.melody import Melody
from .leadsheet.midichords import read_progression
from .listen import Listener
from .model.critic import attach as attach_critic
from .model.generator import build_generator
from .model.sampling import Constraints, key_pitch_classes, parse_key
from .patchports import Ports
from .scheduler import Scheduler
from .settings import EngineSettings

Built = tuple[Mode, tuple[Scheduler, ...]]  # the mode, and its output threads: the notes' first


def _raw_midi(*listeners):
    """One raw-MIDI listener (clock and transport bytes) from those given, or None."""
    chosen = [f for f in listeners if f is not None]
    if len(chosen) < 2:
        return chosen[0] if chosen else None
    return lambda data, at_ns: [f(data, at_ns) for f in chosen]


def _listen_clock(settings: EngineSettings, listener: Listener):
    return listener.on_raw_midi if settings.listen.tempo_source == "midi_clock" else None


def _note_scheduler(settings: EngineSettings, clock: Clock, ports: Ports) -> Scheduler:
    """The outputs opened, and the scheduler of the notes on them (late past the patch's budget)."""
    return Scheduler(ports.open_outputs(clock), clock, late_tolerance_ns=int(settings.budget_ms * 1e6))


def _duet_generator(settings: EngineSettings, critic: bool = True):
    """The duet's model (or trade's, `critic` False), warmed: whole notes decided before any port opens
    (benchmarks/cold_start.py)."""
    m = settings.model
    constraints = Constraints(key_pitch_classes(m.key) if m.key else None, m.lowest, m.highest, m.max_polyphony)
    generator = build_generator(m.name, settings.seed, m.temperature, m.top_p, constraints, m.style_guidance)
    if critic:
        attach_critic(generator, settings.critic)  # best of K fragments; K = 1 (the default) is none
    generator.warm_up()
    return generator


def make_continuation(settings: EngineSettings, clock: Clock, scheduler: Scheduler, listener: Listener,
                      generator=None) -> Mode:
    """The duet over a scheduler made elsewhere (its own session's, or a switch's shared one)."""
    generator = generator if generator is not None else _duet_generator(settings)
    c = settings.continuation
    shape = AnswerShape(c.rhythm, c.mood, {m.name: m for m in c.moods}, c.tap_note, c.tap_channel,
                        parse_key(settings.model.key)[0] if settings.model.key else None, c.rhythm_folder)
    duet = Continuation(generator, scheduler, c, model_velocity=generator.runner.meta.get("velocity_level_mean", 80.0),
                        fallback=settings.model.fallback, clock=clock, listener=listener, shape=shape)
    duet.beats_per_bar = settings.beats_per_bar
    return duet


def make_trade(settings: EngineSettings, clock: Clock, scheduler: Scheduler, listener: Listener,
               generator=None) -> Mode:
    """Trading bars over a scheduler made elsewhere, with a model stream of its own (the duet's is the duet's)."""
    generator = generator if generator is not None else _duet_generator(settings, critic=False)
    return Trade(generator, settings.trade, scheduler, clock, listener, tempo_bpm=settings.tempo_bpm,
                 beats_per_bar=settings.beats_per_bar,
                 model_velocity=generator.runner.meta.get("velocity_level_mean", 80.0),
                 fixed_key=settings.model.key is not None, style=settings.style)


def build_trade(settings: EngineSettings, clock: Clock, ports: Ports, listener: Listener) -> Built:
    """Trading bars: the model first (no port opens if it cannot load), then the outputs, the mode, the inputs."""
    generator = _duet_generator(settings, critic=False)
    scheduler = _note_scheduler(settings, clock, ports)
    mode = make_trade(settings, clock, scheduler, listener, generator)
    ports.open_inputs(clock, raw_midi=_listen_clock(settings, listener))
    return mode, (scheduler,)


def _melody_generator(settings: EngineSettings):
    """The lead sheet's melody: one voice of the model in C4-C6 (the lead sheet sets its pitches note by note),
    warmed before any port opens."""
    m = settings.model
    generator = build_generator(m.name, settings.seed, m.temperature, m.top_p,
                                Constraints(None, 60, 84, max_polyphony=1), m.style_guidance)
    generator.warm_up()
    return generator


def make_leadsheet(settings: EngineSettings, clock: Clock, scheduler: Scheduler, listener: Listener,
                   generator=None) -> Mode:
    """The band over the patch's progression (checked when the patch loaded), a melody too with `melody`."""
    ls = settings.leadsheet
    progression = read_progression(ls.progression, ls.key, settings.beats_per_bar, folder=ls.folder)[0]
    melody = None
    if ls.melody:
        melody = Melody(generator if generator is not None else _melody_generator(settings), settings.beats_per_bar,
                        style=settings.style)
    planner = BarPlanner(progression, CompStyle(ls.bass_pattern, ls.chord_pattern), ls.velocity, melody)
    return LeadSheet(ls, planner, scheduler, clock, listener, tempo_bpm=settings.tempo_bpm)


def build_leadsheet(settings: EngineSettings, clock: Clock, ports: Ports, listener: Listener) -> Built:
    """The lead sheet: its melody's model first when it has one (no port opens if it cannot load), then the rest."""
    generator = _melody_generator(settings) if settings.leadsheet.melody else None
    scheduler = _note_scheduler(settings, clock, ports)
    mode = make_leadsheet(settings, clock, scheduler, listener, generator)
    ports.open_inputs(clock, raw_midi=_listen_clock(settings, listener))
    return mode, (scheduler,)


def build_continuation(settings: EngineSettings, clock: Clock, ports: Ports, listener: Listener) -> Built:
    """The duet: one model stream answering the player's phrases on one channel."""
    generator = _duet_generator(settings)
    scheduler = _note_scheduler(settings, clock, ports)
    mode = make_continuation(settings, clock, scheduler, listener, generator)
    ports.open_inputs(clock, raw_midi=_listen_clock(settings, listener))
    return mode, (scheduler,)


def build_game(settings: EngineSettings, clock: Clock, ports: Ports, listener: Listener) -> Built:
    """Adaptive game music: every voice in one batched model, the game's OSC API, MIDI clock in and out."""
    from .engine.gameosc import register_game_api
    from .engine.gamesetup import build_game_mode, load_voice_bank

    game = settings.game
    bank = load_voice_bank(settings)  # before any port opens
    output = ports.open_outputs(clock, game.voices)
    mode, scheduler, clock_scheduler = build_game_mode(settings, clock, output, ports.raw_send, bank=bank)
    ports.open_inputs(clock, raw_midi=_raw_midi(mode.on_raw_midi if game.midi_clock_in else None,
                                                _listen_clock(settings, listener)))
    if ports.osc is not None:
        register_game_api(ports.osc, game, mode.post)
    return mode, ((scheduler,) if clock_scheduler is None else (scheduler, clock_scheduler))


def _ruled(maker: Callable[[EngineSettings, Clock, Scheduler, Listener], Mode]):
    """The builder of a mode that plays by rule (no model to load): outputs, its scheduler, the mode, inputs."""
    def build(settings: EngineSettings, clock: Clock, ports: Ports, listener: Listener) -> Built:
        scheduler = _note_scheduler(settings, clock, ports)
        mode = maker(settings, clock, scheduler, listener)
        ports.open_inputs(clock, raw_midi=_listen_clock(settings, listener))
        return mode, (scheduler,)
    return build


MODES: dict[str, Callable[[EngineSettings, Clock, Ports, Listener], Built]] = {
    "continuation": build_continuation,
    "game": build_game,
    "harmonize": _ruled(make_harmonize),  # harmony voices for every player note, on a channel of their own
    "accompany": _ruled(make_accompany),  # bass and chords following the player's chord, on the player's beat
    "trade": build_trade,  # the player's bars and the engine's, in turns, on the bar lines
    "leadsheet": build_leadsheet,  # a band looping a chord progression while the player solos
}
MAKERS: dict[str, Callable[..., Mode]] = {  # the stage modes, which can share one session's scheduler
    "continuation": make_continuation,
    "harmonize": make_harmonize,
    "accompany": make_accompany,
    "trade": make_trade,
    "leadsheet": make_leadsheet,
}


def build_switch(settings: EngineSettings, clock: Clock, ports: Ports, listener: Listener) -> Built:
    """Several stage modes over one scheduler, switched live (`/mode NAME`, a program change) on the bar."""
    from .engine.switch import ModeSwitch

    generators = {name: _duet_generator(settings, critic=name == "continuation")  # each its own, before any port
                  for name in settings.modes if name in ("continuation", "trade")}
    if "leadsheet" in settings.modes and settings.leadsheet.melody:
        generators["leadsheet"] = _melody_generator(settings)
    scheduler = _note_scheduler(settings, clock, ports)
    modes = {name: (MAKERS[name](settings, clock, scheduler, listener, generators[name]) if name in generators
                    else MAKERS[name](settings, clock, scheduler, listener)) for name in settings.modes}
    mode = ModeSwitch(modes, settings.mode, scheduler, settings.beats_per_bar)
    mode.listener = listener
    ports.open_inputs(clock, raw_midi=_listen_clock(settings, listener))
    return mode, (scheduler,)


def builder(settings: EngineSettings) -> Callable[[EngineSettings, Clock, Ports, Listener], Built]:
    """What builds this session's mode: a switch when the patch lists several modes, else the mode's own."""
    return build_switch if len(settings.modes) > 1 else MODES[settings.mode]
