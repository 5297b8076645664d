"""Quality: held-out NLL and next-pitch accuracy against the Markov baselines, and musical statistics.

1. Prediction. Each shipped model steps through whole held-out pieces from their start (onnxruntime,
   the graphs as shipped, int8 included) and scores every next note: NLL in nats per note (pitch, and
   all four fields) and whether its likeliest pitch was the one played. The Markov baselines of every
   order 1..8 (pitch only, Witten-Bell back-off, trained on the same training split with all twelve
   transpositions, as `realtime train` does; in quick mode too, on the quick run's files) are scored on the
   same notes; the order quoted beside the model is the one with the lowest validation NLL. Before
   scoring, the split is checked against the one each model card recorded (its test piece names):
   a mismatch stops the script with one line. Two test sets: in-domain,
   the test split the model card records (same collections, same seeded split by piece); and a
   collection held out of training altogether (by default the first files of music21's Essen
   folk-song collection: German folk songs, parsed once and cached).
2. Music. From the first 16 notes of held-out pieces, each model continues 48 notes with its card's
   sampling settings; beside them, the pieces' real next 48 notes, a Markov continuation (best order,
   pitches only, real rhythm) and uniformly random pitches in the prompt's range (real rhythm).
   Pitch-class entropy, scale consistency, polyphony and pitch range come from muspy; interval and
   inter-onset histograms, their Jensen-Shannon divergence from the real data's and the overlap areas
   are our own formulas, stated in realtime/bench/music_stats.py.

    python benchmarks/quality.py [--quick] [--json out/bench/quality.json]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from realtime.bench import music_stats
from realtime.bench.common import write_json
from realtime.model.generator import Generator
from realtime.model.markov import MarkovModel
from realtime.model.generator import ModelRunner
from realtime.model.modelfile import load_metadata, models_dir, resolve_model
from realtime.model.sampling import Sampler
from realtime.model.tokens import Token
from realtime.training.card_metrics import check_split, lstm_scores
from realtime.training.data import augmented, load_collection, split_by_piece

ORDERS = range(1, 9)
PROMPT_NOTES, CONTINUATION_NOTES = 16, 48


QUICK_FILES = {"chorales": 40}  # --quick parses these many files per collection (ABC files hold ~50 tunes)


def markov_scores(model: MarkovModel, pieces: list[np.ndarray]) -> dict:
    """Pitch NLL (nats) and accuracy (likeliest pitch) of every order, over the same notes."""
    nll, hits, count = np.zeros(len(ORDERS)), np.zeros(len(ORDERS)), 0
    for piece in pieces:
        pitches = piece[:, 0].tolist()
        for i, pitch in enumerate(pitches):
            context = pitches[max(0, i - ORDERS[-1]):i]
            for k, order in enumerate(ORDERS):
                p = model.distribution(context, order)
                nll[k] -= math.log(p[pitch])
                hits[k] += int(np.argmax(p) == pitch)
        count += len(pitches)
    return {order: {"pitch_nll": round(nll[k] / count, 4), "pitch_accuracy": round(hits[k] / count, 4)}
            for k, order in enumerate(ORDERS)} | {"notes": count}


def _tokens(tokens: list[Token]) -> np.ndarray:
    return np.array([(t.pitch, t.ioi, t.duration, t.velocity) for t in tokens], dtype=np.int64)


def continuations(model: Path, sampling: dict, markov: MarkovModel, best_order: int, pieces: list[np.ndarray],
                  n: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Real, LSTM, Markov and random continuations of the same prompts."""
    chosen = [t for t in pieces if len(t) >= PROMPT_NOTES + CONTINUATION_NOTES][:n]
    rng = np.random.default_rng(seed)
    generator = Generator(ModelRunner(model, threads=1), Sampler(seed, sampling["temperature"], sampling["top_p"]))
    sets: dict[str, list[np.ndarray]] = {"real": [], "lstm": [], "markov": [], "random": []}
    for piece in chosen:
        prompt, real = piece[:PROMPT_NOTES], piece[PROMPT_NOTES:PROMPT_NOTES + CONTINUATION_NOTES]
        sets["real"].append(real)
        generator.reset()
        for row in prompt:
            generator.feed(Token(*map(int, row)))
        generator.begin_answer()
        sets["lstm"].append(_tokens(generator.generate(CONTINUATION_NOTES)))
        context = prompt[:, 0].tolist()
        for _ in range(CONTINUATION_NOTES):
            context.append(markov.sample(context[-best_order:], rng, order=best_order))
        markov_line = real.copy()
        markov_line[:, 0] = context[PROMPT_NOTES:]
        sets["markov"].append(markov_line)
        random_line = real.copy()
        random_line[:, 0] = rng.integers(prompt[:, 0].min(), prompt[:, 0].max() + 1, CONTINUATION_NOTES)
        sets["random"].append(random_line)
    return sets


def music(sets: dict[str, list[np.ndarray]]) -> dict:
    described = {name: music_stats.describe(pieces) for name, pieces in sets.items()}
    return {"sets": described,
            "distance_to_real": {name: music_stats.distance(d, described["real"]) for name, d in described.items()
                                 if name != "real"}}


def _data_key(card: dict) -> tuple | None:
    training = card.get("training", {})
    if not training.get("corpus") or training.get("midi_dir"):
        return None
    return tuple(training["corpus"]), training.get("split", {}).get("seed", 0), training.get("limit")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default model only, 40 pieces per set, fewer files")
    parser.add_argument("--models", default=None, help="comma-separated shipped models (default: all; quick: bach-folk-lstm.int8)")
    parser.add_argument("--held-out", default="essenFolksong", help="a music21 collection the models never saw")
    parser.add_argument("--held-out-files", type=int, default=3, help="how many of its files (each holds many tunes)")
    parser.add_argument("--pieces", type=int, default=None, help="pieces per test set (default all; quick 40)")
    parser.add_argument("--continuations", type=int, default=None, help="prompts per set (default 150; quick 30)")
    parser.add_argument("--json", default="out/bench/quality.json")
    args = parser.parse_args(argv)
    started = time.monotonic()
    limit = args.pieces or (40 if args.quick else None)
    prompts = args.continuations or (30 if args.quick else 150)
    names = args.models.split(",") if args.models else (["bach-folk-lstm.int8"] if args.quick else
                                                         sorted(p.stem for p in models_dir().glob("*.onnx")))
    notes: list[str] = []
    groups: dict[tuple, list[tuple[str, Path, dict]]] = {}
    for name in names:
        path = resolve_model(name)
        card = load_metadata(path)
        key = _data_key(card)
        if key is None:
            notes.append(f"{name}: its card names no music21 training corpus; not evaluated")
            continue
        groups.setdefault(key, []).append((name, path, card))

    held_out = None
    try:
        held_out = list(load_collection(args.held_out, args.held_out_files).values())
    except Exception as err:  # music21 missing, or the collection would not parse
        notes.append(f"held-out collection {args.held_out} unavailable: {str(err).splitlines()[0][:160]}")
    results: dict = {"quick": args.quick, "notes": notes, "groups": [], "formulas": music_stats.__doc__.strip()}
    for (corpus, seed, corpus_limit), members in groups.items():
        if args.held_out in corpus:
            notes.append(f"{args.held_out} is in the training corpus of {[m[0] for m in members]}: no held-out set")
        pieces = {}
        for collection in corpus:  # quick: the first files only; the split hashes each piece's name, so
            # a piece of the test split here is in the model's test split too
            quick_limit = QUICK_FILES.get(collection, 3) if args.quick else None
            pieces.update(load_collection(collection, min(filter(None, (corpus_limit, quick_limit)), default=None)))
        split = split_by_piece(pieces, seed=seed)
        for name, path, card in members:  # scoring another split than the card's would compare nothing: stop
            check_split(path.with_suffix(".json"), card, split, subset=args.quick)
        test = list(split.test.values())[:limit]
        valid = list(split.valid.values())[:limit]
        other = None if held_out is None or args.held_out in corpus else held_out[:limit]
        t0 = time.monotonic()
        # the same data the model trained on: the training split in the model's transpositions (quick: of fewer files)
        markov = MarkovModel(max_order=ORDERS[-1]).fit(t[:, 0].tolist() for t in augmented(split.train))
        fit_s = round(time.monotonic() - t0, 1)
        markov_valid = markov_scores(markov, valid)
        best_order = min(ORDERS, key=lambda o: markov_valid[o]["pitch_nll"])  # chosen on validation, never on test
        group: dict = {
            "corpus": list(corpus), "seed": seed, "split": split.describe(),
            "test_sets": {"in_domain": {"pieces": len(test), "notes": int(sum(len(t) for t in test))},
                          "held_out": None if other is None else {"collection": args.held_out, "files": args.held_out_files,
                                                                  "pieces": len(other), "notes": int(sum(len(t) for t in other))}},
            "markov": {"training": "training split transposed as the model's training was (-5..+6 semitones)"
                                   + (", of the quick run's files" if args.quick else ""),
                       "fit_s": fit_s, "valid": markov_valid, "best_order": best_order,
                       "best_order_chosen_on": f"validation split ({len(valid)} pieces)",
                       "in_domain": markov_scores(markov, test),
                       "held_out": None if other is None else markov_scores(markov, other)},
            "models": {},
        }
        group["markov"]["best_order_in_card"] = members[0][2].get("metrics", {}).get("markov", {}).get("best_order")
        for name, path, card in members:
            entry = {"in_domain": lstm_scores(path, test), "held_out": None if other is None else lstm_scores(path, other),
                     "card_test": card.get("metrics", {}).get("lstm", {}).get("test", {}).get("pitch_nll")}
            if card.get("controls"):
                entry["controls"] = "measured from each piece around the predicted note, as in training"
                notes.append(f"{name} is conditioned on controls measured around each predicted note (as its card's "
                             "metrics are); they reveal the local pitch-class mix, so its NLL is not comparable "
                             "with the unconditioned models' or the Markov baselines'")
            group["models"][name] = entry
        default_name, default_path, default_card = next((m for m in members if m[0].endswith(".int8")), members[0])
        sampling = default_card.get("sampling", {"temperature": 0.9, "top_p": 0.92})
        group["music"] = {"model": default_name, "sampling": sampling, "prompt_notes": PROMPT_NOTES,
                          "continuation_notes": CONTINUATION_NOTES,
                          "in_domain": music(continuations(default_path, sampling, markov, best_order, list(split.test.values()), prompts))}
        if other is not None:
            group["music"]["held_out"] = music(continuations(default_path, sampling, markov, best_order, held_out, prompts, seed=1))
        results["groups"].append(group)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["headline"] = _headline(results)
    _print(results)
    write_json(results, args.json)
    return results


def _headline(results: dict) -> str:
    if not results["groups"]:
        return "no model evaluated"
    group = results["groups"][0]
    name, scores = next(((n, s) for n, s in group["models"].items() if n.endswith(".int8")), next(iter(group["models"].items())))
    parts = []
    for where in ("in_domain", "held_out"):
        if scores[where] is None:
            continue
        order = group["markov"]["best_order"]  # chosen on validation
        markov = group["markov"][where][order]
        parts.append(f"{where.replace('_', '-')} pitch NLL {scores[where]['pitch_nll']:.3f} vs Markov-{order} "
                     f"{markov['pitch_nll']:.3f}, accuracy {scores[where]['pitch_accuracy']:.1%} vs {markov['pitch_accuracy']:.1%}")
    return f"{name}: " + "; ".join(parts)


def _print(results: dict) -> None:
    for group in results["groups"]:
        print(f"trained on {', '.join(group['corpus'])}; Markov: {group['markov']['training']}")
        sets = [w for w in ("in_domain", "held_out") if group["test_sets"][w]]
        print(f"  {'model':26}" + "".join(f" {w + ' NLL':>17} {'acc':>6}" for w in sets))
        for name, scores in group["models"].items():
            print(f"  {name:26}" + "".join(f" {scores[w]['pitch_nll']:17.3f} {scores[w]['pitch_accuracy']:6.1%}" for w in sets))
        for order in ORDERS:
            print(f"  {'Markov order ' + str(order):26}" + "".join(
                f" {group['markov'][w][order]['pitch_nll']:17.3f} {group['markov'][w][order]['pitch_accuracy']:6.1%}" for w in sets))
        for where in ("in_domain", "held_out"):
            block = group["music"].get(where)
            if not block:
                continue
            print(f"  music, {where} ({block['sets']['real']['pieces']} prompts): "
                  f"{'set':7} {'PC entropy':>10} {'scale cons.':>11} {'interval JS':>11} {'IOI JS':>7}")
            for name, d in block["sets"].items():
                dist = block["distance_to_real"].get(name, {})
                print(f"  {'':33}{name:7} {d['pitch_class_entropy']['mean']:10.3f} {d['scale_consistency']['mean']:11.3f} "
                      f"{dist.get('interval_js_bits', 0):11.3f} {dist.get('ioi_js_bits', 0):7.3f}")
    print(results["headline"])
    for note in results["notes"]:
        print(note)


if __name__ == "__main__":
    main()
