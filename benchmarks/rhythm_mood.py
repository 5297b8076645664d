"""Rhythm prompts and moods: does the answer follow the pattern, and does each mood sound as its table says?

Prompts nobody trained on: the first 16 notes of held-out pieces (the model card's test split, checked
against it, as benchmarks/critic.py picks them), played into the duet offline (realtime/offline.py, the
engine's own loop on a fake clock) at 100 BPM.

- Rhythm: each prompt answered 32 notes under each pattern (grid texts and durations); the share of the
  answer's onsets within 1/16 beat of the looped pattern (from the answer's first note), and the share of
  its pitches in the piece's key (the key tracker over the whole piece; the answer is masked to the key
  heard in the prompt, as `realtime continue --rhythm` does).
- Moods: each prompt answered 32 notes in each mood of the shipped table; per mood the measured tempo
  (the answer's beat in seconds: 60 / its tempo; the output is what a listener hears), density (notes per
  beat at that tempo), mean pitch, mean velocity and the minor share: of the answer's notes a third above
  the prompt's tonic (the tonic the mood's mode is put on), the share that are the minor third. Then every pair of moods the table separates (by 10 BPM, 0.5 notes a beat, 3
  semitones, 10 velocity steps, or major against minor) is checked: does the measured figure differ the
  same way? `direction_agreement` is the share of pairs that do, per quantity.

    python benchmarks/rhythm_mood.py [--quick] [--json out/bench/rhythm_mood.json]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from realtime.bench.common import write_json
from realtime.engine.answershape import AnswerShape
from realtime.listen.keys import key_of
from realtime.model.generator import build_generator
from realtime.model.sampling import Constraints, scale_pitch_classes
from realtime.model.tokens import decode
from realtime.moods import load_moods
from realtime.offline import continue_sequence
from realtime.rhythm import parse_rhythm

PROMPT, CONTINUE, TEMPO = 16, 32, 100.0
PATTERNS = ("x.x.xx.x", "x--.x.x.x-x.", "1 0.5 0.5 1", "x..x..x.", "0.75 0.25 1 1 1")
MARGINS = {"tempo_bpm": 10.0, "density": 0.5, "register": 3.0, "dynamics": 10.0}
MEASURED = {"tempo_bpm": "tempo_bpm", "density": "density", "register": "mean_pitch", "dynamics": "mean_velocity"}


def held_out(model: str, quick: bool, count: int) -> list[np.ndarray]:
    """Token arrays of held-out pieces long enough for a prompt (the card's test split, checked)."""
    from realtime.training.card_metrics import held_out as test_split

    return [t for t in test_split(model, quick) if len(t) >= PROMPT][:count]


def _answer(model: str, seed: int, prompt, tonic: int | None, scale: str, shape: AnswerShape):
    classes = scale_pitch_classes(tonic, scale) if tonic is not None else None
    generator = build_generator(model, seed, constraints=Constraints(classes))
    return continue_sequence(prompt, generator, CONTINUE, shape)


def rhythm_rows(model: str, pieces, seeds) -> dict:
    rows = {}
    for text in PATTERNS:
        rhythm, on, in_key, notes = parse_rhythm(text), [], [], 0
        for seed, piece in itertools.product(seeds, pieces):
            prompt = decode(piece[:PROMPT], TEMPO)
            tonic, scale = key_of(piece[:PROMPT, 0])
            answer = _answer(model, seed, prompt, tonic, scale, AnswerShape(rhythm))
            beats = (np.array([a[0] for a in answer]) - answer[0][0]) * TEMPO / 60
            expected = np.array([rhythm.onset_beats(k) for k in range(len(answer))])
            on.append(np.mean(np.abs(beats - expected) <= 1 / 16))
            piece_tonic, piece_mode = key_of(piece[:, 0])
            key = scale_pitch_classes(piece_tonic, piece_mode)
            in_key.append(np.mean([a[2] % 12 in key for a in answer]))
            notes += len(answer)
        rows[text] = {"on_pattern": float(np.mean(on)), "worst_answer_on_pattern": float(np.min(on)),
                      "in_piece_key": float(np.mean(in_key)), "notes": notes}
    return rows


def mood_rows(model: str, pieces, seeds) -> dict:
    rows = {}
    for mood in load_moods().values():
        tempo, density, pitch, velocity, minor = [], [], [], [], []
        for seed, piece in itertools.product(seeds, pieces):
            prompt = decode(piece[:PROMPT], TEMPO)
            tonic, _ = key_of(piece[:PROMPT, 0])
            answer = _answer(model, seed, prompt, tonic, mood.mode, AnswerShape(None, mood, key_tonic=tonic))
            onsets = np.array([a[0] for a in answer])
            # (a repeated pitch whose note-off shares its moment with the next note-on pairs up as a 1 ns note in
            # offline.sent_notes: left out, it says nothing of the beat)
            durations_s = np.array([a[1] for a in answer if a[1] > 1e-3])
            # the beat a listener hears: the answer's note lengths are whole token durations of it
            beat_s = float(np.median(durations_s / _nearest_beats(durations_s, mood.tempo_bpm)))
            tempo.append(60 / beat_s)
            span_beats = (onsets[-1] - onsets[0]) / beat_s
            density.append((len(answer) - 1) / span_beats if span_beats > 0 else np.nan)
            pitch.append(np.mean([a[2] for a in answer]))
            velocity.append(np.mean([a[3] for a in answer]))
            thirds = [a[2] % 12 for a in answer if tonic is not None and (a[2] - tonic) % 12 in (3, 4)]
            minor.append(np.mean([(pc - tonic) % 12 == 3 for pc in thirds]) if thirds else np.nan)
        rows[mood.name] = {"table": {k: getattr(mood, k) for k in ("tempo_bpm", "mode", "density", "register",
                                                                   "dynamics", "temperature")},
                           "tempo_bpm": float(np.mean(tempo)), "density": float(np.nanmean(density)),
                           "mean_pitch": float(np.mean(pitch)), "mean_velocity": float(np.mean(velocity)),
                           "minor_share": float(np.nanmean(minor))}
    return rows


def _nearest_beats(durations_s: np.ndarray, bpm: float) -> np.ndarray:
    """Each duration in beats of the model's duration buckets, judged at `bpm`: the grid the answer was cut on.

    The figure this gives back is the tempo the answer was played at, measured from its notes; it would
    differ from the table's if the engine played a mood at another tempo than its own."""
    from realtime.model.tokens import DURATION_BEATS

    grid = np.asarray(DURATION_BEATS)
    beats = durations_s * bpm / 60
    return grid[np.abs(np.log(beats[:, None] / grid[None, :])).argmin(axis=1)]


def directions(rows: dict) -> dict:
    """Per quantity: pairs the table separates, and the share whose measured figures differ the same way."""
    moods = load_moods()
    out = {}
    for key, margin in MARGINS.items():
        pairs = [(a, b) for a, b in itertools.combinations(moods, 2)
                 if abs(getattr(moods[a], key) - getattr(moods[b], key)) >= margin]
        agree = [np.sign(getattr(moods[a], key) - getattr(moods[b], key))
                 == np.sign(rows[a][MEASURED[key]] - rows[b][MEASURED[key]]) for a, b in pairs]
        out[key] = {"pairs": len(pairs), "agreement": float(np.mean(agree)) if agree else 1.0,
                    "disagreeing": [f"{a}/{b}" for (a, b), ok in zip(pairs, agree) if not ok]}
    pairs = [(a, b) for a, b in itertools.combinations(moods, 2) if moods[a].minor != moods[b].minor]
    agree = [(rows[a]["minor_share"] > rows[b]["minor_share"]) == moods[a].minor for a, b in pairs]
    out["mode"] = {"pairs": len(pairs), "agreement": float(np.mean(agree)),
                   "disagreeing": [f"{a}/{b}" for (a, b), ok in zip(pairs, agree) if not ok]}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="bach-folk-lstm.int8")
    parser.add_argument("--pieces", type=int, default=24)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    pieces = held_out(args.model, args.quick, 4 if args.quick else args.pieces)
    seeds = (0,) if args.quick else (0, 1)
    rhythm, moods = rhythm_rows(args.model, pieces, seeds), None
    moods = mood_rows(args.model, pieces, seeds)
    agreement = directions(moods)
    on = min(r["on_pattern"] for r in rhythm.values())
    in_key = min(r["in_piece_key"] for r in rhythm.values())
    results = {"model": args.model, "prompts": len(pieces), "seeds": list(seeds), "answer_notes": CONTINUE,
               "rhythm": rhythm, "moods": moods, "direction_agreement": agreement,
               "headline": f"rhythm: {on:.1%} of onsets on the pattern (worst pattern), {in_key:.1%} in key; moods: "
                           + ", ".join(f"{k} {v['agreement']:.0%}" for k, v in agreement.items())
                           + " of the table's directions"}
    print(f"{len(pieces)} held-out prompts x {len(seeds)} seeds, {CONTINUE} notes each ({args.model})")
    print(f"{'pattern':18} {'on pattern':>10} {'worst':>7} {'in key':>7}")
    for text, r in rhythm.items():
        print(f"{text:18} {r['on_pattern']:10.3f} {r['worst_answer_on_pattern']:7.3f} {r['in_piece_key']:7.3f}")
    print(f"{'mood':11} {'tempo':>6} {'dens':>5} {'pitch':>6} {'vel':>5} {'minor':>6}   table: bpm mode dens reg vel")
    for name, r in moods.items():
        t = r["table"]
        print(f"{name:11} {r['tempo_bpm']:6.1f} {r['density']:5.2f} {r['mean_pitch']:6.1f} {r['mean_velocity']:5.1f} "
              f"{r['minor_share']:6.2f}   {t['tempo_bpm']:g} {t['mode']} {t['density']:g} {t['register']:g} "
              f"{t['dynamics']:g}")
    for key, a in agreement.items():
        print(f"{key}: {a['agreement']:.0%} of {a['pairs']} pairs in the table's direction"
              + (f" (not: {', '.join(a['disagreeing'])})" if a["disagreeing"] else ""))
    if args.json:
        write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
