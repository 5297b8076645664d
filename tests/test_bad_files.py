"""Bad files as `realtime run` meets them: one line naming the file and the problem, exit code 2, nothing
started, and a traceback only with --debug."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys

import pytest
from conftest import require_module

from realtime.cli import main


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _model_copy(shipped_model, folder, name="m"):
    graph, meta = folder / f"{name}.onnx", folder / f"{name}.json"
    shutil.copy(shipped_model, graph)
    shutil.copy(shipped_model.with_suffix(".json"), meta)
    return graph, meta


def _rehash(graph, meta):
    card = json.loads(meta.read_text())
    card["sha256"] = hashlib.sha256(graph.read_bytes()).hexdigest()
    meta.write_text(json.dumps(card))


def truncated(graph, meta):
    graph.write_bytes(graph.read_bytes()[:4096])
    return "sha256 differs"


def truncated_and_rehashed(graph, meta):
    graph.write_bytes(graph.read_bytes()[:4096])
    _rehash(graph, meta)
    return "not a loadable ONNX graph"


def garbage_graph(graph, meta):
    graph.write_bytes(b"this is not a protobuf" * 100)
    _rehash(graph, meta)
    return "not a loadable ONNX graph"


def metadata_of_another_size(graph, meta):
    card = json.loads(meta.read_text())
    card["signature"]["dims"]["hidden"] += 1
    meta.write_text(json.dumps(card))
    return "metadata says"


def metadata_not_json(graph, meta):
    meta.write_text("{ not json")
    return "metadata is not valid JSON"


def metadata_missing(graph, meta):
    meta.unlink()
    return "metadata file m.json is missing"


def other_tokenization(graph, meta):
    card = json.loads(meta.read_text())
    card["tokenization"]["scheme"] = "remi"
    card["tokenization"]["pitch"] = 88
    meta.write_text(json.dumps(card))
    return "tokenization"


def wrong_opset(graph, meta):
    onnx = require_module("onnx", "rewriting the opset needs the train extra: pip install -e '.[train]'")
    model = onnx.load(str(graph))
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 99
    onnx.save(model, str(graph))
    _rehash(graph, meta)
    return "opset 99"


@pytest.mark.parametrize("damage", [truncated, truncated_and_rehashed, garbage_graph, metadata_of_another_size,
                                    metadata_not_json, metadata_missing, other_tokenization, wrong_opset])
def test_a_bad_model_is_one_line_naming_the_file_and_nothing_starts(shipped_model, tmp_path, capsys, damage):
    graph, meta = _model_copy(shipped_model, tmp_path)
    expected = damage(graph, meta)
    osc_port = _free_udp_port()
    patch = tmp_path / "p.toml"
    patch.write_text(f'[model]\nname = "{graph}"\n[midi]\nenabled = false\n[osc]\nport = {osc_port}\n')
    assert main(["run", str(patch), "--seconds", "1"]) == 2
    out, err = capsys.readouterr()
    assert "running" not in out, "nothing started"
    assert err.count("\n") == 1 and err.startswith("realtime: ") and expected in err, err
    assert str(tmp_path) in err, "the line names the file at fault"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", osc_port))  # no port was left open


@pytest.mark.parametrize("text,expected", [
    ("[engine\nbudget_ms = 3\n", "TOML syntax error"),
    ("[engine]\nbudget_ms = 3\nbudget_ms = 4\n", "TOML syntax error"),
    ("\xff\xfe", "cannot read"),
    ("[engine]\nbudget_ms = -1\n", "[engine] budget_ms must be between"),
    ("[osc]\nallow = [1, 2]\n", "[osc] allow must be a list of strings"),
    ("[midi]\nbakend = \"jack\"\n", "unknown key 'bakend'"),
    ("engine = 3\n", "[engine] must be a table"),
])
def test_a_bad_patch_is_one_line_naming_the_file(tmp_path, capsys, text, expected):
    patch = tmp_path / "bad.toml"
    patch.write_text(text, encoding="latin-1")
    assert main(["run", str(patch)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and f"{patch}:" in err and expected in err, err


def test_a_missing_patch_is_one_line(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such patch file" in capsys.readouterr().err


def test_the_process_exits_2_without_a_traceback_unless_debug(tmp_path):
    patch = tmp_path / "bad.toml"
    patch.write_text("[engine]\ntempo_bpm = 9999\n")
    plain = subprocess.run([sys.executable, "-m", "realtime.cli", "run", str(patch)], capture_output=True, text=True,
                           timeout=60)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines() == [f"realtime: {patch}: [engine] tempo_bpm must be between 20 and 400, "
                                                 "got 9999.0"]
    debug = subprocess.run([sys.executable, "-m", "realtime.cli", "--debug", "run", str(patch)], capture_output=True,
                           text=True, timeout=60)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "PatchError" in debug.stderr
