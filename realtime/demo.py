"""`realtime demo`: the whole loop with no hardware, and files to hear and see.

A bundled phrase is played into the engine through an in-process input at its real tempo;
the engine hears it, waits for the phrase to end, and answers. The prompt and the answer are
written to demo.mid (two tracks), rendered by the built-in synth to demo.wav (and played when
an audio device exists), and drawn as a piano roll in demo.png. Live, all of this happens in real
time; `--offline` runs the very same engine loop on a FakeClock (realtime/offline.py), so the files
come in a fraction of the time and hold the same notes.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from . import priority
from .clock import FakeClock, SystemClock
from .engine.continuation import ContinuationSettings
from .events import NoteSequence, read_midi, write_midi_tracks
from .io import synth
from .model.generator import build_generator
from .offline import Duet
from .settings import DUET_MODEL

PROMPT = Path(__file__).parent / "data" / "demo_prompt.mid"
SAMPLE_RATE = 44100
LEAD_IN_NS = 200_000_000  # the player starts this long after the engine


def _percentiles_us(values_ns: np.ndarray) -> str:
    if len(values_ns) == 0:
        return "n/a"
    p50, p99 = np.percentile(values_ns, [50, 99]) / 1000
    return f"p50 {p50:.0f} us, p99 {p99:.0f} us"


def run_demo(out_dir: str = "out", model: str = DUET_MODEL, seed: int = 7, play: bool = True,
             offline: bool = False) -> dict:
    """Run the duet once (in real time, or `offline` on a fake clock); write demo.mid, demo.wav and demo.png."""
    out = Path(out_dir)
    phrase = read_midi(PROMPT)
    clock = FakeClock() if offline else SystemClock()
    settings = ContinuationSettings(tempo_bpm=phrase.tempo_bpm)
    generator = build_generator(model, seed)
    duet = Duet(generator, settings, clock)
    mode, scheduler, output = duet.mode, duet.scheduler, duet.output
    generator.warm_up()
    gc.collect()
    gc.freeze()  # nothing allocated at start-up is scanned again: no collection pauses mid-phrase

    origin_ns = clock.now_ns()
    start_ns = origin_ns + LEAD_IN_NS
    phrase_ms = phrase.to_ms()
    phrase_end_ms = max(o + n.duration for o, n in zip(phrase_ms.onsets(), phrase_ms.notes))
    until_ns = start_ns + int((phrase_end_ms + settings.phrase_end_ns / 1e6
                               + (settings.answer_beats + 4) * settings.ms_per_beat) * 1e6)
    how = "offline (a fake clock: no waiting)" if offline else f"at {phrase.tempo_bpm:.0f} bpm"
    print(f"playing the {len(phrase.notes)}-note prompt into the engine {how} ...")
    if offline:
        duet.perform(phrase, start_ns, until_ns)
    else:  # the engine's loop runs here: at the engine thread's priority, as `realtime run` runs it
        with priority.raised("the demo's engine loop", priority.ENGINE_PRIORITY):
            duet.perform(phrase, start_ns, until_ns)
    gc.unfreeze()

    prompt_notes = [(o / 1000 + LEAD_IN_NS / 1e9, n.duration / 1000, n.pitch, n.velocity)
                    for o, n in zip(phrase_ms.onsets(), phrase_ms.notes)]
    answer_notes = duet.answer(origin_ns)
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
    if play and not offline:  # offline is for the files; playing them would take the real time again
        reason = synth.play(audio, SAMPLE_RATE)
        if reason:
            print(reason)
    return figures
