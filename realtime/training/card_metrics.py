"""Model cards' quality figures, measured on the graph each card describes, never copied between precisions.

The int8 graph is not the fp32 graph: its held-out NLL and accuracy are measured on it, with
onnxruntime, the way the engine runs it (one step at a time with carried state, whole pieces from
their start, batched). `realtime train` calls `measure_cards` after export; for shipped models:

    python -m realtime.training.card_metrics models/bach-folk-lstm.onnx models/bach-folk-lstm.int8.onnx

The card also records the names of its test pieces, so an evaluation elsewhere (benchmarks/quality.py)
can check that it scores the split the card was measured on (`check_split`).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model.generator import ModelRunner
from ..model.modelfile import field_slices, load_metadata, resolve_model
from ..model.tokens import FIELDS, START
from .data import Split, load_collection, split_by_piece

HOW = ("onnxruntime {version}, this graph ({precision}), 1 thread: every piece of the split stepped from its start "
       "with carried state (batches of {batch}), each next note scored: NLL in nats per note (pitch, and all four "
       "fields summed) and whether the likeliest pitch was the one played")


def lstm_scores(model: str | Path, pieces: list[np.ndarray], batch: int = 32,
                controls: list[np.ndarray] | None = None) -> dict:
    """Per-note NLL (nats) of each field and next-pitch accuracy over whole pieces, batched by length.

    A model conditioned on controls hears, with each step, the controls its training measured around
    the note it is about to predict (realtime.model.controls.measure), as in training; or, given
    `controls` (one (n, N_CONTROLS) array per piece, e.g. the stage model's harmony, role and style), those.
    """
    given = controls
    runner = ModelRunner(model, threads=1, batch=batch)
    conditioned = runner.controls is not None
    if conditioned:
        from ..model.controls import measure
    slices = field_slices()
    sums, correct, count = dict.fromkeys(FIELDS, 0.0), 0, 0
    start = np.array([[START[f] for f in FIELDS]] * batch, dtype=np.int64)
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
    for g in range(0, len(order), batch):
        group = [pieces[i] for i in order[g:g + batch]]
        longest = max(len(t) for t in group)
        tokens = np.tile(start[:1], (batch, longest, 1))  # padding rows and steps just feed start markers
        active = np.zeros((batch, longest), dtype=bool)
        for row, piece in enumerate(group):
            tokens[row, :len(piece)], active[row, :len(piece)] = piece, True
        controls = None
        if conditioned:  # (batch, step, n): padding keeps the defaults
            controls = np.tile(runner.controls[:1], (batch, longest + 1, 1)).astype(np.float32)
            for row, (i, piece) in enumerate(zip(order[g:g + batch], group)):
                controls[row, :len(piece)] = measure(piece) if given is None else given[i]
        runner.reset()
        logits = runner.step_batch(start, None if controls is None else np.ascontiguousarray(controls[:, 0]))
        for t in range(longest):
            rows = np.flatnonzero(active[:, t])
            target = tokens[rows, t]
            for i, f in enumerate(FIELDS):
                x = logits[rows, slices[f]].astype(np.float64)
                top = x.max(axis=1)
                lse = top + np.log(np.exp(x - top[:, None]).sum(axis=1))
                sums[f] += float((lse - x[np.arange(len(rows)), target[:, i]]).sum())
            correct += int((logits[rows, slices["pitch"]].argmax(axis=1) == target[:, 0]).sum())
            count += len(rows)
            logits = runner.step_batch(np.ascontiguousarray(tokens[:, t]),
                                       None if controls is None else np.ascontiguousarray(controls[:, t + 1]))
    field_nll = {f: round(s / count, 4) for f, s in sums.items()}
    return {"pitch_nll": field_nll["pitch"], "nll": round(sum(field_nll.values()), 4), "field_nll": field_nll,
            "pitch_accuracy": round(correct / count, 4), "notes": count, "pieces": len(pieces)}


def split_problem(card: dict, split: Split, subset: bool = False) -> str | None:
    """Why `split` is not the one the card recorded (None when it is).

    subset: the evaluation loaded only part of the corpus (quick mode), so its test pieces must all
    be among the card's test pieces, and none of its training or validation pieces may be.
    """
    recorded = card.get("training", {}).get("split", {})
    if not recorded:
        return "the card records no split"
    names = set(recorded.get("test", {}).get("names", []))
    if subset:
        if not names:
            return "the card records no test piece names, so a partial corpus cannot be checked against it"
        strays = sorted(set(split.test) - names)
        leaked = sorted((set(split.train) | set(split.valid)) & names)
        if strays:
            return f"{len(strays)} test pieces are not in the card's test split (first: {strays[0]})"
        if leaked:
            return f"{len(leaked)} of the card's test pieces fall in training or validation here (first: {leaked[0]})"
        return None
    for part, counts in split.describe().items():
        if part in recorded and (recorded[part].get("pieces"), recorded[part].get("notes")) != (counts["pieces"], counts["notes"]):
            return (f"{part} split has {counts['pieces']} pieces / {counts['notes']} notes here, the card recorded "
                    f"{recorded[part].get('pieces')} / {recorded[part].get('notes')}")
    if names and names != set(split.test):
        return f"test pieces differ from the card's ({len(set(split.test) - names)} here are not in it)"
    return None


def check_split(card_path: str | Path, card: dict, split: Split, subset: bool = False) -> None:
    """Fail loudly, in one line, when an evaluation would score a split other than the card's."""
    problem = split_problem(card, split, subset)
    if problem:
        raise InputError(f"{card_path}: the evaluated split is not the card's: {problem}")


def held_out(model: str, quick: bool = False) -> list[np.ndarray]:
    """Token arrays of a model's test split (pieces it never trained on), checked against its card. Quick: the
    first 40 chorales and 3 files of other collections (what benchmarks/quality.py --quick parses, cached).
    A stage model's piece is its last line: a chorale's texture (all parts), a tune's melody."""
    path = resolve_model(model)
    card = load_metadata(path)
    if card["training"].get("roles"):  # a stage model: each test piece once, as the older models saw it
        from .stagedata import held_out_pieces

        return [entry["lines"][-1][1][:, :4] for _, entry in sorted(held_out_pieces(card, quick).items())]
    pieces: dict[str, np.ndarray] = {}
    for collection in card["training"]["corpus"]:
        pieces.update(load_collection(collection, ({"chorales": 40}.get(collection, 3)) if quick else None))
    split = split_by_piece(pieces, seed=card["training"].get("split", {}).get("seed", 0))
    check_split(path.with_suffix(".json"), card, split, subset=quick)
    return list(split.test.values())


def card_split(card: dict) -> Split:
    """The card's split, rebuilt from its corpus and seed (parsed once, then cached)."""
    training = card.get("training", {})
    if not training.get("corpus") or training.get("midi_dir"):
        raise InputError("the card names no music21 training corpus: measure it where its MIDI files are")
    pieces: dict[str, np.ndarray] = {}
    for collection in training["corpus"]:
        pieces.update(load_collection(collection, training.get("limit")))
    fractions = training.get("split", {}).get("fractions", {})
    return split_by_piece(pieces, seed=training.get("split", {}).get("seed", 0),
                          valid=fractions.get("valid", 0.1), test=fractions.get("test", 0.1))


def measure_cards(graphs: list[str | Path], split: Split | None = None, batch: int = 32) -> dict[str, dict]:
    """Measure valid and test figures on each graph and write them into its card; returns them by graph."""
    import onnxruntime

    out = {}
    for graph in graphs:
        path = resolve_model(str(graph)) if not Path(graph).exists() else Path(graph)
        card_path = path.with_suffix(".json")
        card = load_metadata(path)
        here = split or card_split(card)
        check_split(card_path, card, here)
        lstm = card.setdefault("metrics", {}).setdefault("lstm", {})
        figures = {part: lstm_scores(path, list(getattr(here, part).values()), batch) for part in ("valid", "test")}
        lstm.update(figures)
        lstm["measured"] = {
            "graph": path.name, "precision": card.get("precision"),
            "how": HOW.format(version=onnxruntime.__version__, precision=card.get("precision"), batch=batch),
            "on_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "history": "best_epoch and history: the fp32 torch model during training, not this graph"}
        card["training"].setdefault("split", {}).setdefault("test", {})["names"] = sorted(here.test)
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        out[path.name] = figures
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graphs", nargs="+", help="ONNX graphs (or shipped model names) whose cards to measure")
    args = parser.parse_args(argv)
    try:
        for name, figures in measure_cards(args.graphs).items():
            print(f"{name}: " + ", ".join(f"{part} pitch NLL {f['pitch_nll']:.4f}, accuracy {f['pitch_accuracy']:.2%}, "
                                          f"NLL {f['nll']:.4f} ({f['notes']} notes)" for part, f in figures.items()))
    except InputError as err:
        print(f"card_metrics: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
