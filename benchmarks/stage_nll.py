"""The stage model's held-out NLL in a fair race: controls measured from the notes before, as a listener knows them.

The card's NLL (models/README.md) feeds each note with the controls its training measured: the +-4 beats
around it, the note itself included (its pitch class share, its register), so the model is told part of
the answer and that figure cannot be set beside the Markov baseline's. Here every held-out line of the
card's test split (checked against it) is scored again on the same graph with the measured controls
taken from the notes before each one only (realtime/model/controls.py measure_before: the 8 beats
before its onset; a first note hears the defaults), which is what the run time can give:

 - around the note: the card's condition, for reference (the note in its own window);
 - before the note: the fair figure, with the harmony, role and style the data states (the harmony at a
   note's onset comes from the other voices, as an accompaniment or a lead sheet gives it);
 - before the note, key profile: as "before", but the pitch-class shares are the key profile of the key
   the listener's tracker hears in the notes before (what the duet gives the model, engine/phrasecontrols.py).
   A model trained on key profiles (`realtime train --stage --key-shares profile`) hears them in every
   condition but the first, which then gives it its line's key profile, as in training;
 - before the note, groups not known: harmony, role and style all zeros;
 - measured not known: the measured controls at their defaults (the uniform key), harmony, role and style as
   the data states them (a model trained with `--drop-measured` has heard this state);
 - nothing known: the measured controls at their defaults and the groups all zeros: the model hears the
   notes before and nothing else, as the Markov baseline does, so this is the strict race;
 - before the note, another style: each line told the next style of the card's list instead of its own,
   so the difference from "before the note" is what the style control is worth in nats, per style.

Beside them the variable-order Markov pitch model with its order chosen on validation (the card's
`metrics.markov`, fit on the same training lines). Pitch NLL in nats per note; lower is better.

    python benchmarks/stage_nll.py [--quick] [--model stage-lstm.int8] [--json out/bench/stage_nll.json]
"""

from __future__ import annotations

import argparse

import numpy as np

from realtime.bench.common import write_json
from realtime.model import controls as ctl
from realtime.model.modelfile import load_metadata, resolve_model
from realtime.training.card_metrics import lstm_scores
from realtime.training.stagecard import nothing_known
from realtime.training.stagedata import example, held_out_pieces, key_profiles_before, lines_of


def heard_before(lines) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each line's measured controls and key profiles from the notes before each note, made once for every
    condition (the key profiles cost 0.15 ms a note)."""
    return [(ctl.measure_before(line[:, :4])[:, :ctl.MEASURED], key_profiles_before(line[:, 0])) for line, _, _ in lines]


def rows(lines, condition: str, styles: tuple[str, ...], key_shares: str, measured: str = "around",
         heard: list[tuple[np.ndarray, np.ndarray]] | None = None) -> list[np.ndarray]:
    """The control rows of every line under one condition (`key_shares`, `measured`: as the model was trained, for
    "around", the card's condition; a model trained on controls from before hears the same rows under "before").
    `heard`: heard_before(lines), needed by every condition but "around"."""
    out = []
    for index, (line, role, style) in enumerate(lines):
        if condition == "another_style":
            style = styles[(styles.index(style) + 1) % len(styles)]
        if condition == "around":
            out.append(example(line, role, style, key_shares=key_shares, measured=measured)[1])
            continue
        controls = example(line, role, style)[1]  # its measured part is replaced: only the groups stay
        if condition in ("measured_not_known", "nothing_known"):
            out.append(nothing_known(controls) if condition == "nothing_known" else ctl.forget_measured(controls))
            continue
        measured_rows, key_rows = heard[index]
        controls[:, :ctl.MEASURED] = measured_rows
        if condition == "key_profile" or key_shares == "profile":
            controls[:, ctl.PITCH_CLASS_SLICE] = key_rows
        if condition == "not_known":
            controls[:, ctl.MEASURED:] = 0.0
        out.append(controls)
    return out


CONDITIONS = {"around": "around the note (the card's; the note in its window)",
              "before": "before the note (fair)",
              "key_profile": "before the note, key shares as the duet's key profile",
              "not_known": "before the note, harmony/role/style not known",
              "measured_not_known": "measured not known, groups as the data states",
              "nothing_known": "nothing known: the notes before alone (strict)",
              "another_style": "before the note, another style"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="stage-lstm.int8")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    path = resolve_model(args.model)
    card = load_metadata(path)
    lines = lines_of(held_out_pieces(card, args.quick))
    styles = tuple(sorted({s for _, _, s in lines}, key=ctl.STYLES.index))
    targets = [line[:, :4] for line, _, _ in lines]
    config = card["training"].get("config", {})
    key_shares, measured = config.get("key_shares", "window"), config.get("measured", "around")
    titles = dict(CONDITIONS)
    if measured == "before":
        titles["around"] = "as trained (the card's; controls from before)"
    scores, by_style, heard = {}, {}, heard_before(lines)
    for condition in CONDITIONS:
        controls = rows(lines, condition, styles, key_shares, measured, heard)
        scores[condition] = lstm_scores(path, targets, 32, controls)
        if condition in ("before", "another_style"):
            by_style[condition] = {s: lstm_scores(path, [t for t, (_, _, st) in zip(targets, lines) if st == s], 32,
                                                  [c for c, (_, _, st) in zip(controls, lines) if st == s])["pitch_nll"]
                                   for s in styles}
    markov = card["metrics"]["markov"]
    print(f"{args.model}: held-out pitch NLL (nats per note) of {len(lines)} test lines, {sum(map(len, targets))} notes")
    for condition, title in titles.items():
        s = scores[condition]
        print(f"  {title:<52} {s['pitch_nll']:6.3f}   accuracy {100 * s['pitch_accuracy']:5.1f}%")
    print(f"  {'Markov order ' + str(markov['best_order']) + ' (chosen on validation)':<52} {markov['best_test_pitch_nll']:6.3f}")
    worth = {s: by_style["another_style"][s] - by_style["before"][s] for s in styles}
    print("  the style's worth (another style minus its own, before the note): "
          + ", ".join(f"{s} {w:+.3f}" for s, w in worth.items()))
    fair_condition = min(("before", "key_profile", "measured_not_known"), key=lambda c: scores[c]["pitch_nll"])
    fair, strict = scores[fair_condition]["pitch_nll"], scores["nothing_known"]["pitch_nll"]
    results = {"model": args.model, "lines": len(lines), "notes": int(sum(map(len, targets))),
               "conditions": titles, "scores": scores, "pitch_nll_by_style": by_style,
               "style_worth_nats": worth, "markov": {"order": markov["best_order"], "test_pitch_nll": markov["best_test_pitch_nll"]},
               "key_shares": key_shares, "measured": measured, "fair": fair_condition,
               "strict_below_markov": strict < markov["best_test_pitch_nll"],
               "headline": f"{args.model}: held-out pitch NLL {strict:.3f} knowing nothing but the notes before, "
                           f"{fair:.3f} with what a listener knows ({CONDITIONS[fair_condition]}) "
                           f"(around the note {scores['around']['pitch_nll']:.3f}) vs Markov order "
                           f"{markov['best_order']} {markov['best_test_pitch_nll']:.3f}; a wrong style costs "
                           f"{min(worth.values()):+.3f}..{max(worth.values()):+.3f} nats"}
    if args.json:
        write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
