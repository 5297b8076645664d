"""Random-weight single-step graphs of any size, exported once with the repository's own export code.

An LSTM step costs the same whatever its weights hold, so timing a size needs no training: a
NoteLSTM with torch's initial weights goes through `export_onnx`, `quantize_int8` and
`write_metadata` exactly as a trained one would, and the runner loads it like a shipped model.
The export itself lives in realtime/training/random_graphs.py (torch only there); graphs are cached by size.
"""

from __future__ import annotations

import math
from pathlib import Path


def graph_paths(folder: Path, hidden: int, layers: int = 2) -> tuple[Path, Path]:
    stem = f"random-lstm-{layers}x{hidden}"
    return folder / f"{stem}.onnx", folder / f"{stem}.int8.onnx"


def random_graphs(folder: str | Path, hidden: int, layers: int = 2, seed: int = 0) -> tuple[Path, Path]:
    """(fp32, int8) graph paths for a random-weight 'layers x hidden' NoteLSTM, exporting them if missing."""
    folder = Path(folder)
    fp32, int8 = graph_paths(folder, hidden, layers)
    if fp32.exists() and int8.exists() and fp32.with_suffix(".json").exists() and int8.with_suffix(".json").exists():
        return fp32, int8
    try:
        from ..training.random_graphs import export_random_lstm
    except ImportError as err:
        raise RuntimeError(f"exporting a {layers}x{hidden} graph needs the train extra ({err.name} is missing)") from None
    export_random_lstm(fp32, int8, hidden, layers, seed)
    return fp32, int8


def parameter_count(graph: str | Path) -> int | None:
    """Parameters of a model: from a random graph's card, or from the shipped weights file."""
    import json

    import numpy as np

    from ..model.reference import weights_path

    graph = Path(graph)
    card = json.loads(graph.with_suffix(".json").read_text())
    if "parameters" in card:
        return int(card["parameters"])
    weights = weights_path(graph)
    if weights.exists():
        with np.load(weights) as w:
            return int(sum(w[k].size for k in w.files))
    return None


# ops whose weights are multiplied in full once per step, and which inputs hold those weights
_WEIGHT_INPUTS = {"LSTM": (1, 2), "DynamicQuantizeLSTM": (1, 2), "GRU": (1, 2), "Gemm": (1,), "MatMul": (1,),
                  "MatMulInteger": (1,), "DynamicQuantizeMatMul": (1,)}


def multiply_adds(graph: str | Path) -> int | None:
    """Multiply-adds of one single-step call (batch 1), counted from the graph's weight initializers.

    A recurrent layer multiplies its input and recurrent weight matrices once per step; a matrix
    product its weight once; embedding lookups (Gather) are free. None without the onnx package.
    """
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(graph), load_external_data=False)
    sizes = {init.name: int(math.prod(init.dims)) for init in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        for i in _WEIGHT_INPUTS.get(node.op_type, ()):
            if i < len(node.input) and node.input[i] in sizes:
                total += sizes[node.input[i]]
    return total
