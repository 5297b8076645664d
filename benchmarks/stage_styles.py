"""Does the style control change the music? Melodies played under each style, judged by per-style Markov models.

One judge per style: a variable-order Markov model (order 3, Witten-Bell back-off, realtime/model/markov.py)
over (interval from the previous note clipped to +-12, inter-onset bucket) pairs, so it hears contour and
rhythm in any key or register, fitted on the melody lines of that style's training pieces (chorale
sopranos, the tunes of O'Neill, Ryan's Mammoth and Essen, as the model card's split assigns them). A
melody is judged as the style whose model gives it the highest likelihood.
 - generated: under each style control (role melody, no harmony) the model plays 48 notes from nothing,
   several seeds; every style hears the same measured controls (NEUTRAL: 1.5 onsets a beat, between the
   chorales' 1 and the dance tunes' 2, single notes, register 70, velocity 80, C major's key profile), so
   only the style group tells them apart;
 - generated with the style's own habits: the same, but density and register at the medians of that
   style's training melodies (what a patch naming the style alone cannot give today: the duet measures
   them from the player), so the style group and its corpus's pace act together;
 - reference: the first 48 notes of real held-out melodies of each style (the card's test split).
 - both generated conditions are played with style guidance (`--guidance`, the patch key `[model]
   style_guidance`, 2 unless told; realtime/model/runner.py) and once more without (0), side by side.
Confusion tables (rows: the style played or the real piece's, columns: the judges' verdict) and the
share judged as the style asked for. O'Neill (irish) and Ryan's Mammoth (fiddle) share dance tunes,
so those two confuse each other in the reference too.

    python benchmarks/stage_styles.py [--quick] [--model stage-lstm.int8] [--guidance G] [--json out/bench/stage_styles.json]
"""

from __future__ import annotations

import argparse

import numpy as np

from realtime.bench.common import write_json
from realtime.bench.stagegen import line_measures, set_row
from realtime.model.controls import STYLE_CORPUS, key_histogram, styles_of
from realtime.model.generator import build_generator
from realtime.model.markov import MarkovModel
from realtime.model.modelfile import load_metadata, resolve_model
from realtime.model.sampling import SCALES
from realtime.settings import RANGES
from realtime.model.tokens import IOI_BEATS
from realtime.training.data import split_by_piece
from realtime.training.stagedata import SUBSETS, held_out_pieces, load_stage_corpus

NOTES, ORDER = 48, 3
NEUTRAL = {"density": 1.5, "polyphony": 1.0, "register": 70.0, "dynamics": 80.0}
N_IOI = len(IOI_BEATS)
GUIDANCE = 2.0  # `[model] style_guidance` as the README advises it (the patch's default is 0, off)


def symbols(pitches, iois) -> list[int]:
    """(interval, onset bucket) pairs as one symbol each; the first note's interval counts as 0."""
    steps = np.clip(np.diff(np.asarray(pitches), prepend=pitches[0]), -12, 12) + 12
    return (steps * N_IOI + np.asarray(iois)).astype(int).tolist()


def judges(card: dict, quick: bool) -> tuple[dict[str, MarkovModel], dict[str, dict]]:
    """Each style's judge, and the medians of its training melodies' density and register."""
    training = card["training"]
    limits = {c: ({"chorales": 40}.get(c, 3)) for c in training["corpus"]} if quick else SUBSETS
    split = split_by_piece(load_stage_corpus(training["corpus"], limits), seed=training.get("split", {}).get("seed", 0))
    out, habits = {}, {}
    for style in styles_of({f"style_{s}": i for i, s in enumerate(STYLE_CORPUS)}):
        lines = [a for entry in split.train.values() if entry["style"] == style
                 for role, a in entry["lines"] if role == "melody"]
        if lines:
            out[style] = MarkovModel(ORDER, 25 * N_IOI).fit(symbols(a[:, 0], a[:, 1]) for a in lines)
            measured = [line_measures(a[:, :4]) for a in lines]
            habits[style] = {k: float(np.median([m[k] for m in measured])) for k in ("density", "register")}
    return out, habits


def verdict(models: dict[str, MarkovModel], sequence: list[int]) -> str:
    return min(models, key=lambda s: models[s].nll([sequence], order=ORDER))


def confusion(models, played: dict[str, list[list[int]]]) -> dict:
    table = {}
    for style, sequences in played.items():
        counts = {s: 0 for s in models}
        for seq in sequences:
            counts[verdict(models, seq)] += 1
        table[style] = {"judged": counts, "n": len(sequences), "share_right": counts.get(style, 0) / max(len(sequences), 1)}
    return table


def generated(model: str, styles, seeds: int, habits: dict[str, dict] | None = None, guidance: float = 0.0
              ) -> dict[str, list[list[int]]]:
    out = {}
    generator = build_generator(model, 0, style_guidance=guidance)
    row = generator.runner.controls[0]
    for style in styles:
        out[style] = []
        for seed in range(seeds):
            generator.sampler.rng = np.random.default_rng(seed)
            set_row(row, {**NEUTRAL, **(habits or {}).get(style, {})}, key_histogram(frozenset(SCALES["major"]), 0), role="melody", style=style)
            generator.reset()
            notes = generator.generate(NOTES)
            out[style].append(symbols([t.pitch for t in notes], [t.ioi for t in notes]))
    return out


def real(card: dict, quick: bool, count: int) -> dict[str, list[list[int]]]:
    out: dict[str, list] = {}
    for _, entry in sorted(held_out_pieces(card, quick).items()):
        role, a = entry["lines"][0]
        if role == "melody" and len(a) >= NOTES and len(out.setdefault(entry["style"], [])) < count:
            out[entry["style"]].append(symbols(a[:NOTES, 0], a[:NOTES, 1]))
    return out


def _print(title: str, table: dict, styles) -> None:
    print(title)
    print(f"{'':>9} " + " ".join(f"{s:>8}" for s in styles) + "   right")
    for style, m in table.items():
        print(f"{style:>9} " + " ".join(f"{m['judged'][s]:8d}" for s in styles) + f"   {100 * m['share_right']:4.0f}%")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="stage-lstm.int8")
    parser.add_argument("--seeds", type=int, default=30, help="melodies generated per style")
    parser.add_argument("--guidance", type=float, default=GUIDANCE,
                        help=f"style guidance of the generated melodies (default {GUIDANCE:g}, the README's advice; "
                             f"the patch key's range {RANGES['style_guidance'].low:g}-{RANGES['style_guidance'].high:g})")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    card = load_metadata(resolve_model(args.model))
    models, habits = judges(card, args.quick)
    styles = [s for s in styles_of({c["name"]: c["index"] for c in card["controls"]}) if s in models]
    count = 4 if args.quick else args.seeds
    g = args.guidance
    tables = {"generated": confusion(models, generated(args.model, styles, count, None, g)),
              "generated_with_habits": confusion(models, generated(args.model, styles, count, habits, g)),
              "unguided": confusion(models, generated(args.model, styles, count, None, 0.0)),
              "unguided_with_habits": confusion(models, generated(args.model, styles, count, habits, 0.0)),
              "real_held_out": confusion(models, real(card, args.quick, count))}
    _print(f"{args.model}: {count} melodies of {NOTES} notes per style control, style guidance {g:g}, judged by "
           f"per-style Markov models", tables["generated"], styles)
    _print("the same with each style's own median density and register ("
           + ", ".join(f"{s} {h['density']:.2f}/beat, {h['register']:.0f}" for s, h in habits.items()) + ")",
           tables["generated_with_habits"], styles)
    _print("without guidance (0)", tables["unguided"], styles)
    _print("without guidance, the style's own density and register", tables["unguided_with_habits"], styles)
    _print("real held-out melodies (reference)", tables["real_held_out"], styles)
    mean = {k: float(np.mean([m["share_right"] for m in t.values()])) for k, t in tables.items()}
    results = {"model": args.model, "guidance": g, "order": ORDER, "habits": habits, "neutral": NEUTRAL, "notes": NOTES, "tables": tables, "mean_share_right": mean,
               "headline": f"{args.model}: {100 * mean['generated']:.0f}% of melodies judged as the style asked for "
                           f"(with the style's density and register {100 * mean['generated_with_habits']:.0f}%; style "
                           f"guidance {g:g}; without it {100 * mean['unguided']:.0f}% and "
                           f"{100 * mean['unguided_with_habits']:.0f}%; real held-out "
                           f"melodies {100 * mean['real_held_out']:.0f}%; chance 25%)"}
    if args.json:
        write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
