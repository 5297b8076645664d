"""A model file: find it, check its graph against its card (metadata), open an ONNX session on it.

Every check gives one line naming the file and the problem (`ModelFileError`); the model is stepped
by `ModelRunner` (realtime/model/generator.py). Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ..errors import ModelFileError
from .tokens import FIELD_SIZES, FIELDS, vocabulary

N_LOGITS = sum(FIELD_SIZES[f] for f in FIELDS)


def field_slices() -> dict[str, slice]:
    """Where each field's logits sit in the graph's single logits vector."""
    out, start = {}, 0
    for f in FIELDS:
        out[f] = slice(start, start + FIELD_SIZES[f])
        start += FIELD_SIZES[f]
    return out


def signature(layers: int, hidden: int, controls: int = 0) -> dict:
    """The graph's input and output names with shapes ("batch" is dynamic); state is h and c stacked.

    A conditioned model (controls > 0) also takes `control` (batch, controls), float32.
    """
    state = [2, "layers", "batch", "hidden"]
    inputs = {"note": ["batch", 4], "state": state}
    if controls:
        inputs = {"note": ["batch", 4], "control": ["batch", controls], "state": state}
    return {
        "inputs": inputs,
        "outputs": {"logits": ["batch", N_LOGITS], "state_out": state},
        "dims": {"layers": layers, "hidden": hidden},
        "logit_fields": {f: [s.start, s.stop] for f, s in field_slices().items()},
    }


def graph_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def models_dir() -> Path:
    """The shipped models: $REALTIME_MODELS, else the repository's models/ folder."""
    return Path(os.environ.get("REALTIME_MODELS", Path(__file__).resolve().parents[2] / "models"))


def resolve_model(name: str | Path) -> Path:
    """A path as given, or a shipped model by name (with or without .onnx)."""
    path = Path(name)
    if path.exists():
        return path
    for candidate in (models_dir() / name, models_dir() / f"{name}.onnx"):
        if candidate.exists():
            return candidate
    shipped = ", ".join(sorted(p.stem for p in models_dir().glob("*.onnx"))) or "none"
    raise ModelFileError(f"{name}: no such model file (shipped models: {shipped})")


def load_metadata(path: Path) -> dict:
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path}: metadata file {meta_path.name} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{meta_path}: metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != "realtime-model-v1":
        raise ModelFileError(f"{meta_path}: not realtime model metadata (format must be realtime-model-v1)")
    for key in ("sha256", "signature", "tokenization", "architecture"):
        if key not in meta:
            raise ModelFileError(f"{meta_path}: metadata lacks the key {key!r}")
    return meta


def _load_problem(err: Exception) -> str:
    """onnxruntime's load error without its error code, C++ location and signature: what a user can act on."""
    text = " ".join(str(err).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^Load model from .*? failed: ?", "", text)
    opset = re.search(r"Opset (\d+) is under development.*?domain (\S+) is till opset (\d+)", text)
    if opset:
        return (f"it needs opset {opset[1]} and this onnxruntime supports {opset[2]} up to opset {opset[3]}; "
                "export it again with a released opset")
    text = re.sub(r"\S+\.(?:h|cc|cpp):\d+ [^(]*\(.*?\) (?=[A-Z])", "", text)  # where in onnxruntime it failed
    return text[:200] or type(err).__name__


def _shape(node) -> list:
    return [d if isinstance(d, int) else "batch" for d in node.shape]


def open_model(name: str | Path, threads: int = 1) -> tuple[Path, dict, object]:
    """(path, card, onnxruntime session) of a shipped or given model, every check passed."""
    import onnxruntime as ort

    path = resolve_model(name)
    meta = load_metadata(path)
    if graph_sha256(path) != meta["sha256"]:
        raise ModelFileError(f"{path}: graph does not match its metadata (sha256 differs: corrupt or replaced file)")
    if meta["tokenization"] != vocabulary():
        raise ModelFileError(f"{path}: tokenization {meta['tokenization'].get('scheme')!r} differs from this engine's")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph kinds
        raise ModelFileError(f"{path}: not a loadable ONNX graph ({_load_problem(err)})") from None
    check_signature(path, meta, session)
    return path, meta, session


def check_signature(path: Path, meta: dict, session) -> None:
    """The graph's inputs, outputs, shapes and logit fields are the ones its card declares."""
    declared = meta["signature"]
    dims = declared.get("dims", {})

    def concrete(shape: list) -> list:
        return [dims.get(d, d) if d != "batch" else "batch" for d in shape]

    actual_in = {i.name: _shape(i) for i in session.get_inputs()}
    actual_out = {o.name: _shape(o) for o in session.get_outputs()}
    for kind, actual in (("inputs", actual_in), ("outputs", actual_out)):
        wanted = {name: concrete(shape) for name, shape in declared[kind].items()}
        if set(actual) != set(wanted):
            raise ModelFileError(f"{path}: graph {kind} {sorted(actual)} do not match the metadata's {sorted(wanted)}")
        for name, shape in wanted.items():
            if actual[name] != shape:
                raise ModelFileError(f"{path}: graph {kind[:-1]} {name!r} has shape {actual[name]}, metadata says {shape}")
    note_type = session.get_inputs()[[i.name for i in session.get_inputs()].index("note")].type
    if note_type != "tensor(int64)":
        raise ModelFileError(f"{path}: graph input 'note' is {note_type}, expected tensor(int64)")
    if declared.get("logit_fields") != {f: [s.start, s.stop] for f, s in field_slices().items()}:
        raise ModelFileError(f"{path}: metadata logit_fields do not match this engine's tokenization")


def check_controls(path: Path, meta: dict) -> list[dict]:
    """The card's control list, checked against the graph's `control` input (absent: none)."""
    shape = meta["signature"]["inputs"].get("control")
    specs = meta.get("controls")
    if shape is None and specs is None:
        return []
    if shape is None or not isinstance(specs, list) or len(specs) != shape[1]:
        raise ModelFileError(f"{path}: metadata 'controls' must list one entry per column of the 'control' input")
    for i, spec in enumerate(specs):
        if not (isinstance(spec, dict) and spec.get("index") == i and isinstance(spec.get("name"), str)
                and all(isinstance(spec.get(k), (int, float)) for k in ("low", "high", "default"))):
            raise ModelFileError(f"{path}: metadata control #{i} needs index, name, low, high and default")
    return specs
