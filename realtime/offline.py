"""A phrase played into the engine, live or offline; `realtime continue` is the offline one.

`Duet` is the continuation mode with its engine, a keyboard and a recording output on one clock:
the demo, `realtime continue` and tests play into it. On the SystemClock a player thread plays the
phrase at its real times and the engine answers in real time; on a FakeClock the clock plays the
notes itself as it passes them and the engine's own loop jumps from one wake to the next, as fast
as the CPU allows. Only the clock differs, so a seed and a phrase give the same notes both ways.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

from .clock import Clock, FakeClock
from .engine.answershape import AnswerShape
from .engine.continuation import Continuation, ContinuationSettings
from .engine.engine import Engine
from .engine.stagecontrols import require_style
from .errors import InputError
from .events import NoteMessage, NoteSequence, read_midi, write_midi
from .listen import Listener
from .io.ports import MemoryInput, MemoryOutput
from .model.generator import Generator, build_generator
from .listen.chords import PITCH_NAMES
from .listen.keys import key_of
from .model.sampling import Constraints, parse_key, scale_pitch_classes
from .moods import choose, load_moods
from .model.tokens import DURATION_BEATS, IOI_BEATS
from .rhythm import parse_rhythm
from .scheduler import Scheduler
from .settings import RANGES

Timed = list[tuple[float, float, int, int]]  # (onset_s, duration_s, pitch, velocity)


def phrase_events(phrase: NoteSequence, start_ns: int) -> list[tuple[int, int, int]]:
    """(moment ns, pitch, velocity) of a phrase's note-ons and note-offs (velocity 0), in playing order."""
    ms = phrase.to_ms()
    events = []
    for onset, note in zip(ms.onsets(), ms.notes):
        events.append((start_ns + round(onset * 1e6), 1, note.pitch, note.velocity))
        events.append((start_ns + round((onset + note.duration) * 1e6), 0, note.pitch, 0))
    return [(at_ns, pitch, velocity) for at_ns, _, pitch, velocity in sorted(events)]  # offs first at a moment


def play_events(port: MemoryInput, clock: Clock, events: list[tuple[int, int, int]]) -> None:
    """Play events into an input at their moments, sleeping between them (a keyboardist's stand-in)."""
    for at_ns, pitch, velocity in events:
        clock.sleep_until(at_ns)
        port.play(pitch, velocity)


def sent_notes(sent: list[tuple[int, NoteMessage]], origin_ns: int) -> Timed:
    """Pair note-ons with their note-offs from an output's log, as (onset_s, duration_s, pitch, vel)."""
    open_notes: dict[tuple[int, int], tuple[int, int]] = {}
    out = []
    for at_ns, message in sent:
        key = (message.channel, message.pitch)
        if message.is_on:
            open_notes[key] = (at_ns, message.velocity)
        elif key in open_notes:
            on_ns, velocity = open_notes.pop(key)
            out.append(((on_ns - origin_ns) / 1e9, max(at_ns - on_ns, 1) / 1e9, message.pitch, velocity))
    return sorted(out)


class Duet:
    """The continuation mode, its engine, a keyboard and a recording output, all on one clock."""

    def __init__(self, generator: Generator, settings: ContinuationSettings, clock: Clock,
                 shape: AnswerShape | None = None, listener: Listener | None = None) -> None:
        """`listener`: the player's tempo, as a session hears it (None: the patch's tempo times everything)."""
        self.clock, self.generator, self.settings = clock, generator, settings
        self.output = MemoryOutput(clock, "answer")
        self.scheduler = Scheduler(self.output)  # no output thread: the engine's loop sends on time
        self.mode = Continuation(generator, self.scheduler, settings,
                                 model_velocity=generator.runner.meta.get("velocity_level_mean", 80.0), shape=shape,
                                 listener=listener)
        self.keyboard = MemoryInput(clock, "keyboard")
        self.engine = Engine(self.mode, clock, [self.keyboard], self.scheduler, listener=listener)

    def perform(self, phrase: NoteSequence, start_ns: int, until_ns: int | None = None) -> None:
        """Play the phrase from `start_ns` and run the engine until `until_ns` (None: until its answer has
        ended); then close the engine, so every note has ended."""
        events = phrase_events(phrase, start_ns)
        player = None
        if isinstance(self.clock, FakeClock):
            for at_ns, pitch, velocity in events:
                self.clock.call_at(at_ns, partial(self.keyboard.play, pitch, velocity))
        else:
            player = threading.Thread(target=play_events, args=(self.keyboard, self.clock, events), daemon=True)
            player.start()
        try:
            if until_ns is not None:
                self.engine.loop(until_ns)
            else:
                self._loop_until_answered(max(at for at, _, _ in events))
        finally:
            if player is not None:
                player.join()
            self.engine.close()

    def _loop_until_answered(self, last_note_off_ns: int) -> None:
        beat_ns = round(self.settings.ms_per_beat * 1e6)
        latest_ns = last_note_off_ns + self.settings.phrase_end_ns + round(
            (self.settings.answer_beats + max(DURATION_BEATS)) * beat_ns)  # the longest answer has ended
        mode, clock = self.mode, self.clock
        self.engine.loop(last_note_off_ns)
        answered = mode.phrases  # answers to earlier parts of the phrase (after a long rest) do not count
        while clock.now_ns() < latest_ns and not (mode.phrases > answered and not mode.answering):
            self.engine.loop(min(latest_ns, clock.now_ns() + beat_ns))

    def answer(self, origin_ns: int) -> Timed:
        """The notes the engine played, in seconds from `origin_ns`."""
        return sent_notes(self.output.sent, origin_ns)


def longest_rest_beats(phrase: NoteSequence) -> float:
    """The longest silence inside a phrase (nothing sounding), in beats."""
    beats = phrase.to_beats()
    longest, sounding_until = 0.0, None
    for onset, note in zip(beats.onsets(), beats.notes):
        if sounding_until is not None and onset > sounding_until:
            longest = max(longest, onset - sounding_until)
        sounding_until = max(sounding_until or 0.0, onset + note.duration)
    return longest


def continue_sequence(prompt: NoteSequence, generator: Generator, notes: int,
                      shape: AnswerShape | None = None, style: str | None = None) -> Timed:
    """The engine's answer to a phrase, offline: (onset_s, duration_s, pitch, velocity) from the phrase's start.

    The answer starts when the silence after the prompt reaches the phrase end (1.5 beats, or just
    longer than the prompt's longest rest, so the engine does not answer mid-prompt).
    """
    default = ContinuationSettings()
    settings = ContinuationSettings(tempo_bpm=prompt.tempo_bpm, answer_notes=notes,
                                    phrase_end_beats=max(default.phrase_end_beats, longest_rest_beats(prompt) + 0.25),
                                    answer_beats=notes * max(IOI_BEATS) + 1.0,  # the count decides, not a length
                                    style=style)  # a stage model's style (engine/stagecontrols.py)
    duet = Duet(generator, settings, FakeClock(), shape)
    duet.perform(prompt, 0)
    return duet.answer(0)


def check_guidance(value: float | None) -> None:
    """--style-guidance within its range (settings.RANGES), else one line naming it."""
    r = RANGES["style_guidance"]
    if value is not None and value not in r:
        raise InputError(f"--style-guidance must be {r.span()}, got {value:g}")


def continue_file(prompt_path: str, out_path: str, model: str, notes: int = 32, seed: int = 0,
                  temperature: float | None = None, top_p: float | None = None, key: str | None = None,
                  max_polyphony: int | None = None, rhythm: str | None = None, mood: str | None = None,
                  moods: str | None = None, style: str | None = None, style_guidance: float | None = None) -> str:
    """Play a MIDI file into the engine offline and write it followed by the answer; returns a one-line summary.

    `rhythm` (a .mid file, grid text or durations: realtime/rhythm.py) gives the answer its onsets and
    durations, `mood` (a name in the `moods` table, default the shipped one) its tempo, mode, register,
    density and loudness, `style` a stage model's style (its card must list it). With either and no `key`,
    the answer keeps to the key heard in the prompt
    (in the mood's mode, with a mood).
    """
    if notes < 1:
        raise InputError(f"--notes must be at least 1, got {notes}")
    prompt = read_midi(prompt_path)
    if not prompt.notes:
        raise InputError(f"{prompt_path}: no notes to continue")
    pattern = parse_rhythm(rhythm) if rhythm is not None else None
    chosen = choose(load_moods(moods), mood, "--mood") if mood is not None else None
    tonic, scale = parse_key(key) if key else key_of(n.pitch for n in prompt.notes)
    shaped = key is not None or pattern is not None or chosen is not None
    pitch_classes = scale_pitch_classes(tonic, chosen.mode if chosen else scale) if shaped and tonic is not None else None
    check_guidance(style_guidance)
    generator = build_generator(model, seed, temperature, top_p, Constraints(pitch_classes, max_polyphony=max_polyphony),
                                style_guidance)
    require_style("--style", style, generator.runner.control_index)
    shape = AnswerShape(pattern, chosen, key_tonic=tonic)
    answered = continue_sequence(prompt, generator, notes, shape, style)
    beats_per_s = prompt.tempo_bpm / 60
    answer = NoteSequence.from_absolute([(o * beats_per_s, d * beats_per_s, p, v) for o, d, p, v in answered],
                                        "beats", prompt.tempo_bpm)
    combined = NoteSequence.from_absolute(
        [(o, n.duration, n.pitch, n.velocity) for o, n in zip(prompt.onsets(), prompt.notes)]
        + [(o, n.duration, n.pitch, n.velocity) for o, n in zip(answer.onsets(), answer.notes)],
        "beats", prompt.tempo_bpm)
    write_midi(combined, out_path)
    extra = [f"rhythm {pattern.describe()}"] if pattern else []
    extra += [f"style {style}"] if style else []
    extra += [f"mood {chosen.name} ({chosen.tempo_bpm:g} BPM, {chosen.mode})"] if chosen else []
    extra += [f"key {PITCH_NAMES[tonic]} {chosen.mode if chosen else scale}"] if pitch_classes and not key else []
    return (f"wrote {out_path}: {len(prompt.notes)} prompt notes + {len(answer.notes)} new notes "
            f"from {Path(generator.runner.path).name}, seed {seed}" + "".join(f"; {e}" for e in extra))
