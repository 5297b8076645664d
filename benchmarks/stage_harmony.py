"""The stage model hears harmony: over a held-out chorale's lower voices, how many melody notes are chord tones?

Held-out chorales (the model card's test split, checked against it): their alto, tenor and bass (exact
times from music21, not summed token onsets, which drift) give the chord sounding at every moment (realtime/bench/stagegen.py `Harmony`: pitch classes sounding, root
by template match). The model hears the soprano's first two notes, then plays a melody (role melody,
style chorale) until the chorale ends, hearing at each note the chord at its onset; its other controls
are the chorale's own, piece-long constants (the soprano's mean density and register, the pitch-class
shares of all four voices), so the only thing that tells it where the chords go is the harmony group.
The figure: the share of notes on a beat (an integer number of beats from the soprano's first note)
that are chord tones at that onset (what the lower voices sound, plus the tones of the template their
root matched, its third chosen by the chorale's key when the voices leave it open: A and E alone in A
major make an A major triad, so its C# counts), for
 - the real sopranos (the reference),
 - the model hearing the harmony,
 - the same model with the harmony group zeroed ("not known", the unconditioned figure),
over several seeds. Also the card's held-out NLL beside the Markov baseline chosen on validation.

    python benchmarks/stage_harmony.py [--quick] [--model stage-lstm.int8] [--json out/bench/stage_harmony.json]
"""

from __future__ import annotations

import argparse

import numpy as np

from realtime.bench.common import write_json
from realtime.bench.music_stats import key_of
from realtime.bench.stagegen import Harmony, chorale_voices, generate_over, line_measures, pitch_shares, set_row, test_pieces
from realtime.model.generator import build_generator
from realtime.model.modelfile import load_metadata, resolve_model

PRIME = 2


def chord_tone_share(notes: list[tuple[float, int]], harmony: Harmony) -> tuple[int, int]:
    """(chord tones, notes) among the notes on a beat: pitch class among the chord tones at the onset."""
    on_beat = [(t, p) for t, p in notes if abs(t - round(t)) < 1e-6]
    return sum(1 for t, p in on_beat if harmony.tones(t) >> (p % 12) & 1), len(on_beat)


def play(model: str, chorales: list[dict], seeds, hear_harmony: bool) -> tuple[int, int]:
    hits = total = 0
    for seed in seeds:
        generator = build_generator(model, seed)
        for chorale in chorales:
            harmony, soprano = chorale["harmony"], chorale["soprano"]
            written = {"key": None}

            def write(row, beat, harmony=harmony, chorale=chorale, written=written) -> bool:
                chord = harmony.at(beat) if hear_harmony else (0, -1)
                changed = chord != written["key"]
                if changed:
                    set_row(row, chorale["measured"], chorale["pcs"], chord, "melody", "chorale")
                    written["key"] = chord
                return changed

            notes = generate_over(generator, soprano[:PRIME], harmony.end, write)
            h, n = chord_tone_share([(t, tok.pitch) for t, tok in notes], harmony)
            hits, total = hits + h, total + n
    return hits, total


def chorales_of(card: dict, quick: bool, count: int) -> list[dict]:
    """Held-out SATB chorales: the soprano's tokens and exact notes, the lower voices' harmony, its controls."""
    out = []
    for name, entry in sorted(test_pieces(card, quick).items()):
        if entry["style"] != "chorale" or [r for r, _ in entry["lines"]][:4] != ["melody", "inner", "inner", "bass"]:
            continue
        voices = chorale_voices(name)
        if voices is None:
            continue
        first = voices["soprano"][0][0]  # times from the soprano's first note, as the tokens count them
        lower = [(s - first, e - first, p) for v in ("alto", "tenor", "bass") for s, e, p in voices[v]]
        soprano = entry["lines"][0][1][:, :4]
        scale = key_of([p for notes in voices.values() for _, _, p in notes])
        out.append({"name": name, "soprano": soprano, "harmony": Harmony(lower, scale), "measured": line_measures(soprano),
                    "soprano_notes": [(s - first, p) for s, _, p in voices["soprano"]],
                    "pcs": pitch_shares(entry["lines"][4][1][:, :4])})
        if len(out) == count:
            break
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="stage-lstm.int8")
    parser.add_argument("--chorales", type=int, default=33)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    card = load_metadata(resolve_model(args.model))
    chorales = chorales_of(card, args.quick, 3 if args.quick else args.chorales)
    seeds = (0,) if args.quick else tuple(range(args.seeds))
    real = [chord_tone_share(c["soprano_notes"], c["harmony"]) for c in chorales]
    rows = {"real sopranos": (sum(h for h, _ in real), sum(n for _, n in real)),
            "model hearing the harmony": play(args.model, chorales, seeds, True),
            "model, harmony not known": play(args.model, chorales, seeds, False)}
    table = {k: {"chord_tones": h, "notes_on_beat": n, "share": h / max(n, 1)} for k, (h, n) in rows.items()}
    lstm, markov = card["metrics"]["lstm"], card["metrics"].get("markov", {})
    nll = {"lstm_test_pitch_nll": lstm["test"]["pitch_nll"], "lstm_test_nll": lstm["test"]["nll"],
           "lstm_test_pitch_nll_groups_not_known": lstm.get("test_groups_not_known", {}).get("pitch_nll"),
           "markov_best_order": markov.get("best_order"), "markov_test_pitch_nll": markov.get("best_test_pitch_nll"),
           "note": lstm.get("measured", {}).get("comparable")}
    print(f"{len(chorales)} held-out chorales x {len(seeds)} seeds ({args.model}): notes on a beat that are chord tones "
          "of the lower voices")
    for k, m in table.items():
        print(f"  {k:<28} {100 * m['share']:5.1f}%  ({m['chord_tones']}/{m['notes_on_beat']})")
    print(f"held-out test pitch NLL (card, {card['precision']}): LSTM {nll['lstm_test_pitch_nll']:.3f} "
          f"(groups not known {nll['lstm_test_pitch_nll_groups_not_known']}), best Markov "
          f"(order {nll['markov_best_order']}) {nll['markov_test_pitch_nll']}")
    share = {k: m["share"] for k, m in table.items()}
    results = {"model": args.model, "chorales": [c["name"] for c in chorales], "seeds": list(seeds), "table": table,
               "nll": nll,
               "headline": f"{args.model}: {100 * share['model hearing the harmony']:.0f}% of on-beat melody notes are "
                           f"chord tones (real sopranos {100 * share['real sopranos']:.0f}%, harmony not known "
                           f"{100 * share['model, harmony not known']:.0f}%)"}
    if args.json:
        write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
