"""`python -m realtime.training.reexport models/stage-lstm.onnx`: write a trained stage model's graphs again.

The weights (NAME.weights.npz) and the card's training record stay; the fp32 and int8 graphs are laid
out by this version's exporter (realtime/training/export.py) and each card's held-out figures are
measured again on its own new graph (realtime/training/stagecard.py), as `realtime train --stage` does
after training. Needs the train extra (torch, onnx); parses the corpus once if it is not cached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelFileError

CARD_KEYS = ("training", "metrics", "velocity_level_mean")  # what export_all's info carries over


def reexport(graph: Path, out_dir: Path | None = None) -> list[Path]:
    """Re-export the stage model whose fp32 graph is `graph` (into `out_dir`, default beside it)."""
    import torch

    from ..model import controls as ctl
    from ..model.modelfile import load_metadata
    from .lstm import ControlledNoteLSTM
    from .stage import StageConfig, export_measured, load_stage_split

    weights = graph.with_suffix(".weights.npz")
    if not weights.exists():
        raise InputError(f"{graph}: no {weights.name} beside it (re-export needs the card and the weights)")
    card = load_metadata(graph)
    if card.get("precision") != "fp32":
        raise InputError(f"{graph}: the card says precision {card.get('precision')!r}; name the fp32 graph")
    config = card.get("training", {}).get("config", {})
    known = StageConfig.__dataclass_fields__
    if "key_shares" not in config:
        raise InputError(f"{graph}: not a stage model (its card's training.config has no key_shares)")
    cfg = StageConfig(**{k: v for k, v in config.items() if k in known})
    arch = card["architecture"]
    model = ControlledNoteLSTM(arch["hidden"], arch["layers"], ctl.LOW, ctl.HIGH)
    try:
        with np.load(weights) as saved:
            model.load_state_dict({k: torch.from_numpy(saved[k]) for k in saved.files})
    except (OSError, ValueError, RuntimeError) as err:  # not an npz, or weights of another shape
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{weights}: not the weights its card describes ({first})") from None
    model.eval()
    split, _ = load_stage_split(cfg)
    return export_measured(model, out_dir or graph.parent, card.get("graph", graph.name).removesuffix(".onnx"),
                           {k: card[k] for k in CARD_KEYS if k in card}, split, cfg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", type=Path, help="the stage model's fp32 graph (models/stage-lstm.onnx)")
    parser.add_argument("--out-dir", type=Path, help="write there instead of beside the graph")
    args = parser.parse_args(argv)
    try:
        paths = reexport(args.graph, args.out_dir)
    except (InputError, ModelFileError) as err:
        print(f"reexport: {err}", file=sys.stderr)
        return 2
    print("re-exported " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
