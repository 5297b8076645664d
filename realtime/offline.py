"""`realtime continue`: prime the model with a MIDI file and write the file with its continuation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .events import NoteSequence, read_midi, write_midi
from .model.generator import Generator, build_generator
from .model.sampling import Constraints, key_pitch_classes
from .model.tokens import Token, encode, ioi_bucket


def continue_sequence(prompt: NoteSequence, generator: Generator, notes: int) -> NoteSequence:
    """The continuation alone (in beats), starting as the prompt's last note ends, at its loudness."""
    generator.reset()
    for row in encode(prompt):
        generator.feed(Token(*map(int, row)))
    onsets = prompt.onsets()
    gap = max((o + n.duration for o, n in zip(onsets, prompt.notes)), default=0.0) - (onsets[-1] if onsets else 0.0)
    tokens = []
    if notes > 0:
        first = generator.sample_next(ioi=ioi_bucket(gap))
        generator.commit(first)
        tokens = [first] + generator.generate(notes - 1)
    loudness = round(sum(n.velocity for n in prompt.notes) / len(prompt.notes)) if prompt.notes else None
    out = [t.to_note(velocity=loudness) for t in tokens]
    if out:
        out[0] = replace(out[0], ioi=gap)  # exact, not the bucket's centre
    return NoteSequence(out, "beats", prompt.tempo_bpm)


def continue_file(prompt_path: str, out_path: str, model: str, notes: int = 32, seed: int = 0,
                  temperature: float | None = None, top_p: float | None = None, key: str | None = None,
                  max_polyphony: int | None = None) -> str:
    """Write prompt + continuation to out_path; returns a one-line summary."""
    prompt = read_midi(prompt_path)
    constraints = Constraints(pitch_classes=key_pitch_classes(key) if key else None, max_polyphony=max_polyphony)
    generator = build_generator(model, seed, temperature, top_p, constraints)
    answer = continue_sequence(prompt, generator, notes)
    combined = NoteSequence(prompt.notes + answer.notes, "beats", prompt.tempo_bpm)
    write_midi(combined, out_path)
    return (f"wrote {out_path}: {len(prompt.notes)} prompt notes + {len(answer.notes)} new notes "
            f"from {Path(generator.runner.path).name}")
