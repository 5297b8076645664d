"""`realtime demo`: the whole loop with no hardware, in real time, and files to hear and see.

A bundled phrase is played into the engine through an in-process input at its real tempo;
the engine hears it, waits for the phrase to end, and answers. The prompt and the answer are
written to demo.mid (two tracks), rendered by the built-in synth to demo.wav (and played when
an audio device exists), and drawn as a piano roll in demo.png.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import numpy as np

from .clock import Clock, SystemClock
from .engine.continuation import Continuation, ContinuationSettings
from .engine.engine import Engine
from .events import NoteMessage, NoteSequence, read_midi, write_midi_tracks
from .io import synth
from .io.ports import MemoryInput, MemoryOutput
from .offline import build_generator
from .scheduler import Scheduler

PROMPT = Path(__file__).parent / "data" / "demo_prompt.mid"
SAMPLE_RATE = 44100
Timed = list[tuple[float, float, int, int]]  # (onset_s, duration_s, pitch, velocity)


def play_phrase(port: MemoryInput, clock: Clock, phrase: NoteSequence, start_ns: int) -> None:
    """Play a phrase into an input at its real times (the demo's stand-in for a keyboardist)."""
    ms = phrase.to_ms()
    events = []
    for onset, note in zip(ms.onsets(), ms.notes):
        events.append((start_ns + int(onset * 1e6), 1, note.pitch, note.velocity))
        events.append((start_ns + int((onset + note.duration) * 1e6), 0, note.pitch, 0))
    for at_ns, _, pitch, velocity in sorted(events):
        clock.sleep_until(at_ns)
        port.play(pitch, velocity)


def sent_notes(sent: list[tuple[int, NoteMessage]], start_ns: int) -> Timed:
    """Pair note-ons with their note-offs from an output's log, as (onset_s, duration_s, pitch, vel)."""
    open_notes: dict[tuple[int, int], tuple[int, int]] = {}
    out = []
    for at_ns, message in sent:
        key = (message.channel, message.pitch)
        if message.is_on:
            open_notes[key] = (at_ns, message.velocity)
        elif key in open_notes:
            on_ns, velocity = open_notes.pop(key)
            out.append(((on_ns - start_ns) / 1e9, max(at_ns - on_ns, 1) / 1e9, message.pitch, velocity))
    return sorted(out)


def _percentiles_us(values_ns: np.ndarray) -> str:
    if len(values_ns) == 0:
        return "n/a"
    p50, p99 = np.percentile(values_ns, [50, 99]) / 1000
    return f"p50 {p50:.0f} us, p99 {p99:.0f} us"


def run_demo(out_dir: str = "out", model: str = "bach-folk-lstm.int8", seed: int = 7, play: bool = True) -> dict:
    """Run the duet once in real time; write demo.mid, demo.wav and demo.png; return the figures."""
    out = Path(out_dir)
    phrase = read_midi(PROMPT)
    clock = SystemClock()
    settings = ContinuationSettings(tempo_bpm=phrase.tempo_bpm)
    generator = build_generator(model, seed)
    output = MemoryOutput(clock, "demo-out")
    scheduler = Scheduler(output)
    mode = Continuation(generator, scheduler, settings,
                        model_velocity=generator.runner.meta.get("velocity_level_mean", 80.0))
    keyboard = MemoryInput(clock, "demo-keyboard")
    engine = Engine(mode, clock, [keyboard], scheduler)
    generator.warm_up()
    gc.collect()
    gc.freeze()  # nothing allocated at start-up is scanned again: no collection pauses mid-phrase

    start_ns = clock.now_ns() + 200_000_000
    phrase_ms = phrase.to_ms()
    phrase_end_ms = max(o + n.duration for o, n in zip(phrase_ms.onsets(), phrase_ms.notes))
    until_ns = start_ns + int((phrase_end_ms + settings.phrase_end_ns / 1e6
                               + (settings.answer_beats + 4) * settings.ms_per_beat) * 1e6)
    player = threading.Thread(target=play_phrase, args=(keyboard, clock, phrase, start_ns), daemon=True)
    print(f"playing the {len(phrase.notes)}-note prompt into the engine at {phrase.tempo_bpm:.0f} bpm ...")
    player.start()
    engine.run(until_ns=until_ns)
    player.join()
    gc.unfreeze()

    prompt_notes = [(o / 1000 + 0.2, n.duration / 1000, n.pitch, n.velocity)
                    for o, n in zip(phrase_ms.onsets(), phrase_ms.notes)]
    answer_notes = sent_notes(output.sent, start_ns - 200_000_000)
    beats_per_s = phrase.tempo_bpm / 60
    as_beats = [NoteSequence.from_absolute([(o * beats_per_s, d * beats_per_s, p, v) for o, d, p, v in notes],
                                           "beats", phrase.tempo_bpm) for notes in (prompt_notes, answer_notes)]
    write_midi_tracks([(as_beats[0], 0), (as_beats[1], 1)], out / "demo.mid", phrase.tempo_bpm)
    audio = synth.render(prompt_notes + answer_notes, SAMPLE_RATE)
    synth.write_wav(out / "demo.wav", audio, SAMPLE_RATE)
    from .viz import piano_roll

    piano_roll(out / "demo.png", [("prompt (player)", prompt_notes, "tab:blue"),
                                  ("answer (engine)", answer_notes, "tab:orange")],
               title=f"realtime demo: {Path(generator.runner.path).name}, seed {seed}")
    figures = {
        "prompt_notes": len(prompt_notes), "answer_notes": len(answer_notes),
        "model_step_ns": mode.step_ns[:mode.steps].copy(),
        "answer_latency_ns": list(mode.answer_latency_ns),
        "late_notes": scheduler.late_count, "held_after_stop": len(output.held),
    }
    print(f"answered with {len(answer_notes)} notes; wrote {out / 'demo.wav'}, {out / 'demo.mid'}, {out / 'demo.png'}")
    print(f"model step latency: {_percentiles_us(figures['model_step_ns'])} over {mode.steps} steps")
    latency = ", ".join(f"{ns / 1e6:.3f} ms" for ns in mode.answer_latency_ns) or "no answer"
    print(f"phrase end -> first answer note: {latency}; late notes: {scheduler.late_count}")
    if play:
        reason = synth.play(audio, SAMPLE_RATE)
        if reason:
            print(reason)
    return figures
