"""Export a trained NoteLSTM as a single-step ONNX graph (fp32 and dynamic int8) with metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..model.controls import describe as describe_controls
from ..model.reference import weights_path
from ..model.modelfile import graph_sha256, signature
from ..model.tokens import START, vocabulary
from .lstm import ControlledNoteLSTM, ControlledSingleStep, NoteLSTM, SingleStep

OPSET = 17
SAMPLING_DEFAULTS = {"temperature": 0.9, "top_p": 0.92}


def export_onnx(model: NoteLSTM, path: Path) -> None:
    """Trace one step with batch as a dynamic axis; state goes in and out explicitly.

    A ControlledNoteLSTM gets a third input, `control` (batch, n_controls), between note and state.
    """
    model = model.eval()
    if isinstance(model, ControlledNoteLSTM):
        return _export_controlled(model, path)
    step = SingleStep(model).eval()  # export restores the wrapper's mode afterwards: keep it eval
    note = torch.tensor([[START["pitch"], START["ioi"], START["duration"], START["velocity"]]], dtype=torch.int64)
    state = torch.zeros(2, model.layers, 1, model.hidden)
    torch.onnx.export(
        step, (note, state), str(path), dynamo=False, opset_version=OPSET,
        input_names=["note", "state"], output_names=["logits", "state_out"],
        dynamic_axes={"note": {0: "batch"}, "state": {2: "batch"}, "logits": {0: "batch"}, "state_out": {2: "batch"}},
    )


def _export_controlled(model: ControlledNoteLSTM, path: Path) -> None:
    step = ControlledSingleStep(model).eval()
    note = torch.tensor([[START["pitch"], START["ioi"], START["duration"], START["velocity"]]], dtype=torch.int64)
    control = model.control_low.unsqueeze(0).clone()
    state = torch.zeros(2, model.layers, 1, model.hidden)
    torch.onnx.export(
        step, (note, control, state), str(path), dynamo=False, opset_version=OPSET,
        input_names=["note", "control", "state"], output_names=["logits", "state_out"],
        dynamic_axes={"note": {0: "batch"}, "control": {0: "batch"}, "state": {2: "batch"}, "logits": {0: "batch"},
                      "state_out": {2: "batch"}},
    )


def quantize_int8(source: Path, target: Path, keep_fp32: tuple[str, ...] = ()) -> None:
    """Dynamic int8 weights: ~1.3x faster single steps, and the weights fit in cache longer.

    7-bit weights with a scale per output channel. On an x86 CPU without VNNI (AVX2 only, as many AMD
    EPYC) onnxruntime's 8-bit kernels saturate their 16-bit sums: on 200 random notes the carried
    state of a fresh 64x1 LSTM drifted 0.64 from fp32 (7 bits per channel: 0.029), and on 80 held-out
    pieces game-lstm's pitch NLL rose from 1.439 (fp32) to 1.459 (8 bits) against 1.443 (7 bits per
    channel; 7 bits per tensor: 1.505). Same speed (bach-folk-lstm: 159 us a step both ways).

    `keep_fp32` names nodes left in fp32. The stage model's first LSTM gets them: onnxruntime quantizes
    an LSTM's input with one scale per call, and that input is the note embeddings beside 49 controls,
    so the small controls lost their resolution (150 held-out test lines: pitch NLL 0.557 fp32, 0.653
    all int8, 0.561 with the first LSTM in fp32; 41 us a step p50 all three ways at hidden 128).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    missing = set(keep_fp32) - {node.name for node in onnx.load(str(source)).graph.node}
    if missing:
        raise ValueError(f"{source}: no node named {', '.join(sorted(missing))} to keep in fp32")
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, reduce_range=True, per_channel=True,
                     nodes_to_exclude=list(keep_fp32))


def write_metadata(path: Path, model: NoteLSTM, precision: str, info: dict) -> None:
    """The JSON card beside each graph: what the runner checks, and what a user reads."""
    meta = {
        "format": "realtime-model-v1",
        "graph": path.name,
        "sha256": graph_sha256(path),
        "opset": OPSET,
        "precision": precision,
        "architecture": {"type": "lstm", "layers": model.layers, "hidden": model.hidden},
        "signature": signature(model.layers, model.hidden, getattr(model, "n_controls", 0)),
        "tokenization": vocabulary(),
        "sampling": dict(SAMPLING_DEFAULTS),
        **info,
    }
    if isinstance(model, ControlledNoteLSTM):
        meta["controls"] = describe_controls()
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def export_all(model: NoteLSTM, out_dir: Path, name: str, info: dict, keep_fp32: tuple[str, ...] = ()) -> list[Path]:
    """Write name.onnx, name.int8.onnx, their .json cards and name.weights.npz; returns the graph paths.

    `keep_fp32`: nodes of the int8 graph left in fp32 (quantize_int8), stated in its card.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out_dir / f"{name}.onnx", out_dir / f"{name}.int8.onnx"
    export_onnx(model, fp32)
    np.savez_compressed(weights_path(fp32), **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    write_metadata(fp32, model, "fp32", info)
    quantize_int8(fp32, int8, keep_fp32)
    write_metadata(int8, model, "int8", {**info, **({"fp32_nodes": list(keep_fp32)} if keep_fp32 else {})})
    return [fp32, int8]
