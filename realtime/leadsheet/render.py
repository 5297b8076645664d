"""`realtime leadsheet PROGRESSION --out FILE.mid`: bass, chords and a melody over a progression, offline.

The progression (text, or a .mid file whose chords are read per half bar) loops for `bars` bars; the
bass and chords are planned bar by bar (comp.py), the melody is the LSTM's under the lead sheet's
limits (melody.py). The file has one track per part, named, on MIDI channels 2 (bass), 3 (chords) and
4 (melody), at the tempo given (or the MIDI file's). A seed gives the same file every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import LeadSheetError
from ..events import NoteSequence, write_midi_tracks
from ..engine.stagecontrols import require_style
from ..offline import check_guidance
from ..model.generator import Generator, build_generator
from ..model.sampling import Constraints
from ..moods import Mood
from .comp import Comper, CompStyle
from .melody import Melody
from .midichords import read_progression
from .progression import Progression

CHANNELS = {"bass": 1, "chords": 2, "melody": 3}  # 0-based: MIDI channels 2, 3 and 4
VELOCITY = {"bass": 84, "chords": 64}
MIN_BARS = 8  # without --bars: whole passes of the progression, at least this many bars


@dataclass
class Rendered:
    """The parts as (onset beat, beats, pitch, velocity), the progression they were played over, its bars."""

    progression: Progression
    bars: int
    parts: dict[str, list[tuple[float, float, int, int]]] = field(default_factory=dict)


def melody_generator(model: str, seed: int, lowest: int = 60, highest: int = 84,
                     style_guidance: float | None = None) -> Generator:
    """One voice of the model in the melody's register (the lead sheet sets its pitch limits note by note)."""
    return build_generator(model, seed, constraints=Constraints(None, lowest, highest, max_polyphony=1),
                           style_guidance=style_guidance)


def render(progression: Progression, bars: int, generator: Generator | None, style: CompStyle = CompStyle(),
           lowest: int = 60, highest: int = 84, strong_beats: bool = True, model_style: str | None = None) -> Rendered:
    """Every part for `bars` bars (the progression looping); no melody without a generator (`strong_beats`
    False: the melody is held to the fitted scale alone, chord tones not asked for on strong beats;
    `model_style`: a stage model's style, the melody told its role and each chord too)."""
    bpb = progression.beats_per_bar
    comper, out = Comper(style, bpb), Rendered(progression, bars, {"bass": [], "chords": []})
    for bar in range(bars):
        for note in comper.bar(progression, bar):
            out.parts[note.part].append((bar * bpb + note.onset, note.beats, note.pitch, VELOCITY[note.part]))
    if generator is not None:
        melody = Melody(generator, bpb, lowest, highest, strong_beats, model_style)
        melody.prepare(progression.key, [span.chord for span in progression.spans], progression.chord_at)
        end, notes = bars * bpb, []
        while True:
            onset, beats, pitch, velocity = melody.next_note()
            if onset >= end - 1e-9:
                break
            notes.append((onset, min(beats, end - onset), pitch, velocity))
        out.parts["melody"] = notes
    return out


def write_rendered(rendered: Rendered, path: str, tempo_bpm: float) -> None:
    tracks, names = [], []
    for part, notes in rendered.parts.items():
        sequence = NoteSequence.from_absolute([(o, d, p, v) for o, d, p, v in notes], "beats", tempo_bpm)
        tracks.append((sequence, CHANNELS[part]))
        names.append(part)
    write_midi_tracks(tracks, path, tempo_bpm, names=names)


def mood_velocity(rendered: Rendered, dynamics: float) -> None:
    """Every part's velocities scaled so their mean over all parts is `dynamics`, each part keeping its
    balance against the others (the bass above the chords)."""
    velocities = [v for notes in rendered.parts.values() for _, _, _, v in notes]
    if not velocities:
        return
    scale = dynamics / (sum(velocities) / len(velocities))
    for part, notes in rendered.parts.items():
        rendered.parts[part] = [(o, b, p, max(1, min(127, round(v * scale)))) for o, b, p, v in notes]


def leadsheet_file(source: str, out: str, bars: int | None = None, tempo_bpm: float | None = None, seed: int = 0,
                   key: str | None = None, melody: bool = True, model: str = "stage-lstm.int8",
                   bass_pattern: str = "quarter", chord_pattern: str = "half", mood: Mood | None = None,
                   style: str | None = None, style_guidance: float | None = None) -> str:
    """Render a progression to a MIDI file; returns a one-line summary. A mood sets the tempo (unless one is
    given), the loudness and the melody's register (its mode cannot: the chords say major or minor)."""
    progression, file_tempo = read_progression(source, key)
    if bars is not None and bars < 1:
        raise LeadSheetError(f"leadsheet: --bars must be at least 1, got {bars}")
    fallback = mood.tempo_bpm if mood is not None else (file_tempo or 100.0)
    tempo = tempo_bpm if tempo_bpm is not None else round(fallback, 2)
    if not 20 <= tempo <= 400:
        raise LeadSheetError(f"leadsheet: --tempo must be 20-400 BPM, got {tempo:g}")
    if bars is None:
        bars = progression.bars * math.ceil(MIN_BARS / progression.bars)
    lowest, highest = 60, 84
    if mood is not None:  # the melody's two octaves centred on the mood's register, kept playable
        lowest = max(36, min(84, round(mood.register) - 12))
        highest = lowest + 24
    check_guidance(style_guidance)
    generator = melody_generator(model, seed, lowest, highest, style_guidance) if melody else None
    if generator is not None:
        require_style("--style", style, generator.runner.control_index)
    rendered = render(progression, bars, generator, CompStyle(bass_pattern, chord_pattern), lowest, highest,
                      model_style=style)
    if mood is not None:
        mood_velocity(rendered, mood.dynamics)
    write_rendered(rendered, out, tempo)
    counts = ", ".join(f"{part} {len(notes)}" for part, notes in rendered.parts.items())
    feel = (f"; mood {mood.name}" if mood is not None else "") + (f"; style {style}" if style and melody else "")
    return (f"wrote {out}: {bars} bars of {progression.describe()} in {progression.key.name} at {tempo:g} BPM "
            f"({counts} notes; seed {seed}{feel})")
