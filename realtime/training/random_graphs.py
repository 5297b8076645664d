"""A NoteLSTM with torch's initial weights, exported like a trained one: for timing model sizes.

An LSTM step costs the same whatever its weights hold, so `realtime bench` times sizes it never
trained through the same `export_onnx`, `quantize_int8` and `write_metadata` as a shipped model.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path

import torch

from .export import export_onnx, quantize_int8, write_metadata
from .lstm import NoteLSTM


def export_random_lstm(fp32: Path, int8: Path, hidden: int, layers: int = 2, seed: int = 0) -> None:
    """Write the fp32 and int8 graphs (with their cards) to these paths, atomically."""
    folder = fp32.parent
    torch.manual_seed(seed)
    model = NoteLSTM(hidden, layers).eval()
    parameters = sum(p.numel() for p in model.parameters())
    info = {"weights": f"random (torch initialisation, seed {seed}): for timing only", "parameters": parameters}
    building = folder / f".building-{os.getpid()}"  # a half-written graph never looks cached
    building.mkdir(parents=True, exist_ok=True)
    try:
        tmp32, tmp8 = building / fp32.name, building / int8.name
        with warnings.catch_warnings():  # tracing an LSTM and quantizing without pre-processing both warn
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            try:
                export_onnx(model, tmp32)
                write_metadata(tmp32, model, "fp32", info)
                quantize_int8(tmp32, tmp8)
            finally:
                logging.disable(logging.NOTSET)
        write_metadata(tmp8, model, "int8", info)
        for tmp, final in ((tmp32, fp32), (tmp8, int8)):
            os.replace(tmp, final)
            os.replace(tmp.with_suffix(".json"), final.with_suffix(".json"))
    finally:
        shutil.rmtree(building, ignore_errors=True)
