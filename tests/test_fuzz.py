"""A bounded atheris run over the OSC and patch parsers (tests/fuzz_osc.py), seeded with valid inputs.

libFuzzer owns its process (it exits when done), so it runs as a subprocess; a crash makes it exit
non-zero and print the input that did it.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_module
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

if sys.platform == "linux" and sys.version_info < (3, 13):  # where the test extra installs it
    require_module("atheris", "pip install atheris")
else:
    pytest.skip("atheris has no build for this platform or Python", allow_module_level=True)

HARNESS = Path(__file__).with_name("fuzz_osc.py")


def _seeds(folder: Path) -> None:
    note = OscMessageBuilder("/note/on")
    for value in (60, 100, 1):
        note.add_arg(value, "i")
    control = OscMessageBuilder("/control/temperature")
    control.add_arg(0.5, "f")
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(note.build())
    bundle.add_content(control.build())
    folder.joinpath("note").write_bytes(note.build().dgram)
    folder.joinpath("control").write_bytes(control.build().dgram)
    folder.joinpath("bundle").write_bytes(bundle.build().dgram)
    folder.joinpath("patch").write_bytes(b'T[engine]\nbudget_ms = 3.0\n[osc]\nallow = ["127.0.0.1"]\n'
                                         b'[[controls]]\nsource = "cc:1"\ntarget = "temperature"\n')


@pytest.mark.slow
def test_atheris_finds_no_crash_in_the_parsers(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _seeds(corpus)
    run = subprocess.run([sys.executable, str(HARNESS), "-runs=40000", "-seed=1", "-max_len=2048", str(corpus)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 40000 runs" in run.stderr
