"""Load a single-step ONNX model, check it against its metadata, and step it with carried state.

The caller owns the recurrent state: `step` feeds one note and keeps the new state, `get_state`
and `reset(state)` save and restore it (the engine rolls back unplayed notes this way).
Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from .tokens import FIELD_SIZES, FIELDS, START, vocabulary

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


class ModelRunner:
    """One model, one stream (or a batch of streams), stepped one note at a time."""

    def __init__(self, path: str | Path, threads: int = 1, batch: int = 1) -> None:
        import onnxruntime as ort

        self.path = resolve_model(path)
        self.meta = load_metadata(self.path)
        if graph_sha256(self.path) != self.meta["sha256"]:
            raise ModelFileError(f"{self.path}: graph does not match its metadata (sha256 differs: corrupt or replaced file)")
        if self.meta["tokenization"] != vocabulary():
            raise ModelFileError(f"{self.path}: tokenization {self.meta['tokenization'].get('scheme')!r} differs from this engine's")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph kinds
            raise ModelFileError(f"{self.path}: not a loadable ONNX graph ({_load_problem(err)})") from None
        self._check_signature()
        dims = self.meta["signature"]["dims"]
        self.layers, self.hidden, self.batch = dims["layers"], dims["hidden"], batch
        self._note = np.zeros((batch, 4), dtype=np.int64)
        self._feeds = {"note": self._note, "state": None}
        self.control_specs: list[dict] = self._check_controls()
        self.control_index = {spec["name"]: spec["index"] for spec in self.control_specs}
        self.controls: np.ndarray | None = None  # (batch, n) fed with every step; None: unconditioned
        if self.control_specs:
            defaults = np.array([spec["default"] for spec in self.control_specs], dtype=np.float32)
            self.controls = np.tile(defaults, (batch, 1))
            self._feeds["control"] = self.controls
        self.logits: np.ndarray | None = None  # (batch, N_LOGITS) after a step; field_slices() cut it
        self.reset()

    def _check_signature(self) -> None:
        declared = self.meta["signature"]
        dims = declared.get("dims", {})

        def concrete(shape: list) -> list:
            return [dims.get(d, d) if d != "batch" else "batch" for d in shape]

        actual_in = {i.name: _shape(i) for i in self.session.get_inputs()}
        actual_out = {o.name: _shape(o) for o in self.session.get_outputs()}
        for kind, actual in (("inputs", actual_in), ("outputs", actual_out)):
            wanted = {name: concrete(shape) for name, shape in declared[kind].items()}
            if set(actual) != set(wanted):
                raise ModelFileError(f"{self.path}: graph {kind} {sorted(actual)} do not match the metadata's {sorted(wanted)}")
            for name, shape in wanted.items():
                if actual[name] != shape:
                    raise ModelFileError(f"{self.path}: graph {kind[:-1]} {name!r} has shape {actual[name]}, metadata says {shape}")
        note_type = self.session.get_inputs()[[i.name for i in self.session.get_inputs()].index("note")].type
        if note_type != "tensor(int64)":
            raise ModelFileError(f"{self.path}: graph input 'note' is {note_type}, expected tensor(int64)")
        if declared.get("logit_fields") != {f: [s.start, s.stop] for f, s in field_slices().items()}:
            raise ModelFileError(f"{self.path}: metadata logit_fields do not match this engine's tokenization")

    def _check_controls(self) -> list[dict]:
        """The card's control list, checked against the graph's `control` input (absent: none)."""
        shape = self.meta["signature"]["inputs"].get("control")
        specs = self.meta.get("controls")
        if shape is None and specs is None:
            return []
        if shape is None or not isinstance(specs, list) or len(specs) != shape[1]:
            raise ModelFileError(f"{self.path}: metadata 'controls' must list one entry per column of the 'control' input")
        for i, spec in enumerate(specs):
            if not (isinstance(spec, dict) and spec.get("index") == i and isinstance(spec.get("name"), str)
                    and all(isinstance(spec.get(k), (int, float)) for k in ("low", "high", "default"))):
                raise ModelFileError(f"{self.path}: metadata control #{i} needs index, name, low, high and default")
        return specs

    def reset(self, state: np.ndarray | None = None) -> None:
        """Back to silence (zero state), or to a state saved by `get_state`."""
        if state is None:
            self._state = np.zeros((2, self.layers, self.batch, self.hidden), np.float32)
        else:
            self._state = state.copy()
        self.logits = None

    def warm_up(self, steps: int = 64) -> None:
        """Run a few throwaway steps so the first real notes do not pay for cold caches; then reset."""
        for i in range(steps):
            self.step(48 + i % 36, 1 + i % 8, i % 10, 4)
        self.reset()

    @property
    def state(self) -> np.ndarray:
        """The current state itself, not a copy: read it, never write into it (get_state copies)."""
        return self._state

    def get_state(self) -> np.ndarray:
        return self._state.copy()

    def start(self) -> np.ndarray:
        """Step the start-of-sequence marker: the model's prediction of a first note."""
        return self.step(START["pitch"], START["ioi"], START["duration"], START["velocity"])

    def step(self, pitch: int, ioi: int, duration: int, velocity: int) -> np.ndarray:
        """Feed one note (token fields) to every stream in the batch; returns (batch, N_LOGITS) logits."""
        self._note[:] = (pitch, ioi, duration, velocity)  # one assignment, broadcast over the batch
        return self.step_batch(self._note)

    def step_batch(self, notes: np.ndarray, controls: np.ndarray | None = None) -> np.ndarray:
        """Feed one note per stream, shape (batch, 4); returns (batch, N_LOGITS) logits.

        A conditioned model takes `controls` (batch, n_controls) float32, else `self.controls`.
        """
        self._feeds["note"], self._feeds["state"] = notes, self._state
        if controls is not None:
            self._feeds["control"] = controls
        elif self.controls is not None:
            self._feeds["control"] = self.controls
        self.logits, self._state = self.session.run(None, self._feeds)
        return self.logits

    def step_some(self, notes: np.ndarray, advance: np.ndarray, controls: np.ndarray | None = None) -> np.ndarray:
        """Step every stream in one call, but keep the new state only where `advance` (bool, batch) is set.

        Streams that did not play a note keep their state; the caller keeps their old logits too.
        One batched call for all streams costs far less than one call per stream that moved.
        """
        old = self._state
        self.step_batch(notes, controls)
        np.copyto(self._state, old, where=~advance[None, None, :, None])
        return self.logits

