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
    """The controlled step written node by node (onnx.helper), not traced: 16 nodes where the tracer
    made 47, with the same inputs, outputs and function (fp32 logits within 1e-5 of the traced graph's
    over 200 chained steps). onnxruntime spends about a microsecond per node, a good part of a step at
    this size: stage-lstm (hidden 128), one int8 note with sampling, p99 168-178 -> 141-142 us
    (`benchmarks/model_step.py`, two runs each, alternated).

    - the controls are scaled to 0..1 once (Mul, Add) for both readers. Folding the scale into the
      weights saves those two nodes but not in int8: onnxruntime quantizes the head's input with one
      scale per call, and raw controls (a register near 84 beside a hidden state within +-1) took the
      hidden state's resolution (logits off by up to 4.8 over 200 steps);
    - the state is one Reshape to (2 * layers, batch, hidden) and one Split; each layer's last
      hidden state is the next layer's input as it is (a sequence of one step);
    - the head is one Gemm over [last hidden state, control].
    torch's gate order (i, f, g, o) becomes ONNX's (i, o, f, c). Layer k's LSTM node is named
    /lstm/LSTM (k = 0) or /lstm/LSTM_k, as the tracer named them, so `keep_fp32` names the same node.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    step = ControlledSingleStep(model).eval()
    hidden, layers = model.hidden, model.layers
    low, scale = step.control_low.numpy(), step.control_scale.numpy()

    def onnx_gates(w: np.ndarray) -> np.ndarray:
        i, f, g, o = np.split(w, 4, axis=0)
        return np.concatenate([i, o, f, g], axis=0)

    inits = [numpy_helper.from_array(step.table.numpy(), "table"),
             numpy_helper.from_array(scale.astype(np.float32), "control_scale"),
             numpy_helper.from_array((-low * scale).astype(np.float32), "control_shift"),
             numpy_helper.from_array(step.offsets.numpy().astype(np.int64), "offsets"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1"),
             numpy_helper.from_array(np.array([0], np.int64), "axis0"),
             numpy_helper.from_array(np.array([2 * layers, -1, hidden], np.int64), "flat_state"),
             numpy_helper.from_array(np.array([2, layers, -1, hidden], np.int64), "state_shape")]
    h_in, c_in = [f"h{k}" for k in range(layers)], [f"c{k}" for k in range(layers)]
    nodes = [helper.make_node("Mul", ["control", "control_scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "control_shift"], ["c"]),
             helper.make_node("Add", ["note", "offsets"], ["rows"]),
             helper.make_node("Gather", ["table", "rows"], ["embeddings"]),
             helper.make_node("ReduceSum", ["embeddings", "axis1"], ["note_in"], keepdims=0),
             helper.make_node("Concat", ["note_in", "c"], ["step_in"], axis=1),
             helper.make_node("Unsqueeze", ["step_in", "axis0"], ["x0"]),
             helper.make_node("Reshape", ["state", "flat_state"], ["states"]),
             helper.make_node("Split", ["states"], h_in + c_in, axis=0)]
    x, lstm = "x0", step.lstm
    for k in range(layers):
        w_ih = getattr(lstm, f"weight_ih_l{k}").detach().numpy()
        b_ih = getattr(lstm, f"bias_ih_l{k}").detach().numpy()
        w_hh = getattr(lstm, f"weight_hh_l{k}").detach().numpy()
        b_hh = getattr(lstm, f"bias_hh_l{k}").detach().numpy()
        inits += [numpy_helper.from_array(onnx_gates(w_ih)[None].astype(np.float32), f"W{k}"),
                  numpy_helper.from_array(onnx_gates(w_hh)[None].astype(np.float32), f"R{k}"),
                  numpy_helper.from_array(np.concatenate([onnx_gates(b_ih), onnx_gates(b_hh)])[None].astype(np.float32),
                                          f"B{k}")]
        nodes.append(helper.make_node("LSTM", [x, f"W{k}", f"R{k}", f"B{k}", "", h_in[k], c_in[k]],
                                      ["", f"h{k}_out", f"c{k}_out"], hidden_size=hidden,
                                      name="/lstm/LSTM" if k == 0 else f"/lstm/LSTM_{k}"))
        x = f"h{k}_out"  # (1, batch, hidden): a sequence of one step for the next layer
    w_head, b_head = step.head.weight.detach().numpy(), step.head.bias.detach().numpy()
    inits += [numpy_helper.from_array(w_head.astype(np.float32), "head_w"),
              numpy_helper.from_array(b_head.astype(np.float32), "head_b")]
    nodes += [helper.make_node("Squeeze", [x, "axis0"], ["top"]),
              helper.make_node("Concat", ["top", "c"], ["head_in"], axis=1),
              helper.make_node("Gemm", ["head_in", "head_w", "head_b"], ["logits"], transB=1),
              helper.make_node("Concat", [f"h{k}_out" for k in range(layers)] + [f"c{k}_out" for k in range(layers)],
                               ["states_out"], axis=0),
              helper.make_node("Reshape", ["states_out", "state_shape"], ["state_out"])]
    outputs = w_head.shape[0]
    graph = helper.make_graph(
        nodes, "controlled_step",
        [helper.make_tensor_value_info("note", TensorProto.INT64, ["batch", 4]),
         helper.make_tensor_value_info("control", TensorProto.FLOAT, ["batch", model.n_controls]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, layers, "batch", hidden])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", outputs]),
         helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [2, layers, "batch", hidden])],
        inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="realtime")
    proto.ir_version = 8
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


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
