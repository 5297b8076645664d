"""MIDI learn: `/learn temperature` over OSC (liblo's oscsend), then a foreign JACK client moves a controller."""

from __future__ import annotations

import shutil
import subprocess
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from jackclients import ROOT, Keyboard, wait_for

from realtime.app import LiveEngine
from realtime.io import midi
from realtime.learn import bound_text, save_learned
from realtime.patch import ControlMapping, load_patch

OSC_PORT = 9471


@pytest.mark.skipif(shutil.which("oscsend") is None, reason="liblo-tools (oscsend) is not installed")
def test_a_controller_moved_after_learn_sets_the_temperature_and_is_saved(jack, tmp_path: Path) -> None:
    patch_path = tmp_path / "duet.toml"
    patch_path.write_text((ROOT / "patches" / "duet.toml").read_text())
    patch = load_patch(patch_path)
    patch = replace(patch, midi=replace(patch.midi, backend="jack"), osc=replace(patch.osc, port=OSC_PORT))
    live = LiveEngine(patch)
    keys = Keyboard()
    try:
        live.start()
        keys.play_into(midi.resolve_port(midi.list_ports("jack")["outputs"], "realtime", "output", "jack"))
        before = live.generator.sampler.temperature
        keys.send([0xB0, 21, 127])  # not bound yet: nothing happens
        time.sleep(0.1)
        assert live.generator.sampler.temperature == before
        subprocess.run(["oscsend", "localhost", str(OSC_PORT), "/learn", "s", "temperature"], check=True)
        assert wait_for(lambda: live.engine.learning == "temperature", 2.0), "the engine is learning"
        keys.send([0xB0, 21, 0])
        assert wait_for(lambda: live.generator.sampler.temperature == 0.6, 2.0), "cc 21 at 0: the patch's minimum"
        keys.send([0xB0, 21, 127])
        assert wait_for(lambda: live.generator.sampler.temperature == 1.4, 2.0), "cc 21 at 127: its maximum"
        keys.send([0xB0, 1, 0])  # the mod wheel no longer steers the temperature
        time.sleep(0.1)
        assert live.generator.sampler.temperature == 1.4
        lines = save_learned(live)
    finally:
        keys.close()
        live.stop()
    assert lines == [f"learned cc:21 -> temperature (0.6-1.4); saved in {patch_path}"]
    saved = patch_path.read_text()
    assert "# The mod wheel sets how adventurous the answers are." in saved, "comments are kept"
    assert "# key = \"G major\"              # uncomment to keep the answer in a key" in saved
    controls = load_patch(patch_path).controls  # and it still parses as a patch
    assert ("cc:21", "temperature", 0.6, 1.4) in [(c.source, c.target, c.min, c.max) for c in controls]
    assert "cc:1" not in [c.source for c in controls], "the learned controller replaced the old one"
    assert "osc:temperature" in [c.source for c in controls], "OSC bindings stay"


def test_learning_into_a_patch_without_controls_adds_the_array() -> None:
    text = "# mine\n[engine]\ntempo_bpm = 90  # slow\n"
    out = bound_text(text, ControlMapping("cc:7", "top_p", 0.05, 1.0))
    assert out.startswith(text)
    assert tomllib.loads(out)["controls"] == [{"source": "cc:7", "target": "top_p", "min": 0.05, "max": 1.0}]


def test_learn_over_osc_names_a_known_control_or_is_dropped() -> None:
    from realtime.events import LearnRequest
    from realtime.io.oscaddress import AddressTable
    from realtime.io.osccodec import Drop

    table = AddressTable()
    assert table.event("/learn", "s", ["top_p"]) == LearnRequest("top_p")
    with pytest.raises(Drop, match="cannot learn 'volume'"):
        table.event("/learn", "s", ["volume"])


def test_link_in_a_patch_is_validated_like_the_other_keys() -> None:
    from realtime.errors import PatchError
    from realtime.patch import parse_patch

    with pytest.raises(PatchError, match=r"\[link\] enabled needs engine.mode = \"game\""):
        parse_patch({"link": {"enabled": True}}, "p.toml")
    with pytest.raises(PatchError, match=r"\[link\] unknown key 'tempo'"):
        parse_patch({"link": {"tempo": 120}}, "p.toml")
