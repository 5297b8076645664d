"""The stage model's cards: held-out NLL measured on each exported graph, beside the Markov baseline.

As card_metrics does for the other models, every figure is measured on the graph the card describes
(fp32 or int8, onnxruntime, one thread), never copied between precisions. A stage line is scored twice:
hearing every control group (harmony, role, style as the data states them) and with the three groups
all zeros (not known, the measured controls only), which says what the groups are worth in nats.

The NLL is not comparable with an unconditioned model's (bach-folk-lstm, the Markov baseline): the
measured controls describe the +-4 beats around the predicted note, including the note itself (its
pitch class share, the register), so the model is told part of the answer. The Markov figure is
the variable-order pitch model of `realtime train`, fit on the same training lines (transposed
-5..+6) with its order chosen on validation: the reference the issue asks for, not a fair race.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..model import controls as ctl
from ..model.modelfile import load_metadata
from .card_metrics import HOW, lstm_scores
from .data import Split
from .stagedata import example, lines_of

NOTE_PROFILE = ("density, register and dynamics are measured around the predicted note (its window includes it); "
                "the key shares are the line's key profile: benchmarks/stage_nll.py gives the figure with every "
                "control from the notes before")
NOTE_BEFORE = ("every control is measured from the notes before the predicted one (what a listener knows then): "
               "comparable with an unconditioned model's NLL and the Markov baseline's")
NOTE = ("controls measured around the predicted note (its window includes the note) make this NLL not "
        "comparable with an unconditioned model's or the Markov baseline's")


def _blind(controls: np.ndarray) -> np.ndarray:
    out = controls.copy()
    out[:, ctl.MEASURED:] = 0.0
    return out


def nothing_known(controls: np.ndarray) -> np.ndarray:
    """Rows that tell the model nothing: the measured controls at their defaults (the uniform key), the groups all
    zeros. The model hears only the notes before, as the Markov baseline does: a fair race."""
    return ctl.forget_measured(_blind(controls))


def stage_markov(split: Split, max_order: int = 8) -> dict:
    """The pitch-only Markov baseline on the split's lines (train.markov_baselines on line tokens)."""
    from .train import markov_baselines

    as_tokens = Split(*({f"{i}": a[:, :4] for i, (a, _, _) in enumerate(lines_of(getattr(split, part)))}
                        for part in ("train", "valid", "test")))
    return markov_baselines(as_tokens, max_order)


def measure_stage_cards(graphs: list[Path], split: Split, batch: int = 32, markov: dict | None = None,
                        key_shares: str = "window", measured: str = "around") -> dict:
    """Measure each graph's valid and test NLL (every group heard, and none) and write them into its card."""
    import onnxruntime

    markov = stage_markov(split) if markov is None else markov
    print(f"markov: best order {markov['best_order']}, test pitch NLL {markov['best_test_pitch_nll']:.3f}")
    parts = {}
    for part in ("valid", "test"):
        examples = [example(a, r, s, key_shares=key_shares, measured=measured) for a, r, s in lines_of(getattr(split, part))]
        parts[part] = ([y for _, _, y in examples], [c for _, c, _ in examples])
    out = {}
    for graph in graphs:
        path = Path(graph)
        card = load_metadata(path)
        lstm = card.setdefault("metrics", {}).setdefault("lstm", {})
        for part, (pieces, controls) in parts.items():
            lstm[part] = lstm_scores(path, pieces, batch, controls)
        lstm["test_groups_not_known"] = lstm_scores(path, parts["test"][0], batch, [_blind(c) for c in parts["test"][1]])
        lstm["test_nothing_known"] = lstm_scores(path, parts["test"][0], batch, [nothing_known(c) for c in parts["test"][1]])
        lstm["measured"] = {
            "graph": path.name, "precision": card.get("precision"),
            "how": HOW.format(version=onnxruntime.__version__, precision=card.get("precision"), batch=batch)
            + "; every line of the split (test_groups_not_known: harmony, role and style all zeros; "
              "test_nothing_known: those and the measured controls at their defaults, flagged not known: the notes alone)",
            "on_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "history": "best_epoch and history: the fp32 torch model during training, not this graph",
            "comparable": NOTE_BEFORE if measured == "before" else NOTE if key_shares == "window" else NOTE_PROFILE}
        card["metrics"]["markov"] = markov
        card["training"].setdefault("split", {}).setdefault("test", {})["names"] = sorted(split.test)
        path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        out[path.name] = {k: lstm[k] for k in ("valid", "test", "test_groups_not_known", "test_nothing_known")}
        print(f"{path.name}: test NLL {lstm['test']['nll']:.3f}, pitch {lstm['test']['pitch_nll']:.3f} "
              f"(groups not known: pitch {lstm['test_groups_not_known']['pitch_nll']:.3f}; nothing known: pitch "
              f"{lstm['test_nothing_known']['pitch_nll']:.3f})")
    return out
