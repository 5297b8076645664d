from pathlib import Path

import pytest

from realtime.errors import PatchError
from realtime.patch import load_patch, parse_patch

PATCHES = Path(__file__).resolve().parents[1] / "patches"


@pytest.mark.parametrize("name", sorted(p.name for p in PATCHES.glob("*.toml") if p.name != "moods.toml"))
def test_shipped_patches_load(name):
    patch = load_patch(PATCHES / name)
    assert patch.engine.budget_ms > 0 and 1 <= patch.continuation.channel <= 16


def test_shipped_mood_table_loads():  # patches/moods.toml is a mood table, not a patch (realtime/moods.py)
    from realtime.moods import load_moods

    moods = load_moods(PATCHES / "moods.toml")
    assert {"calm", "tense", "cheerful", "romantic", "sad"} <= set(moods) and len(moods) >= 7


def test_defaults_are_safe():
    patch = parse_patch({})
    assert patch.osc.host == "127.0.0.1" and patch.osc.allow == ("127.0.0.1",)
    assert patch.midi.input is None and patch.midi.output is None  # virtual ports


def _error(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PatchError) as info:
        load_patch(path)
    message = str(info.value)
    assert message.startswith(f"{path}:") and "\n" not in message
    return message


@pytest.mark.parametrize("text,expected", [
    ('[engine]\nbudget_ms = "x"\n', '[engine] budget_ms must be a number, got \'x\''),
    ("[engine]\nbudget_ms = 0\n", "budget_ms must be between"),
    ("[engine]\nbugdet_ms = 3\n", "unknown key 'bugdet_ms'"),
    ("[engnie]\n", "unknown section [engnie]"),
    ("[model]\nkey = \"H major\"\n", "[model] key"),
    ("[model]\nlowest = 90\nhighest = 40\n", "lowest <= highest"),
    ("[continuation]\nchannel = 17\n", "channel must be a MIDI channel 1-16"),
    ("[midi]\nbackend = \"dsound\"\n", "backend must be one of"),
    ("[osc]\nport = 70000\n", "UDP port"),
    ("[osc]\nallow = \"127.0.0.1\"\n", "list of strings"),
    ("[[controls]]\nsource = \"cc:300\"\ntarget = \"temperature\"\n", "source must be"),
    ("[[controls]]\nsource = \"cc:1\"\ntarget = \"volume\"\n", "target must be one of"),
    ("[[controls]]\nsource = \"cc:1\"\n", "needs target"),
    ("[[controls]]\nsource = \"cc:1\"\ntarget = \"temperature\"\nmin = 0\n", "must lie in"),
    ("[engine\nbudget_ms = 3\n", "TOML syntax error"),
])
def test_errors_name_the_file_the_key_and_the_problem(tmp_path, text, expected):
    assert expected in _error(tmp_path, text)


def test_missing_file():
    with pytest.raises(PatchError, match="no such patch file"):
        load_patch("patches/nope.toml")


def test_control_curves():
    patch = parse_patch({"controls": [{"source": "cc:1", "target": "temperature", "min": 0.5, "max": 2.0,
                                       "curve": "exp"}]})
    mapping = patch.controls[0]
    assert mapping.value(0) == pytest.approx(0.5) and mapping.value(1) == pytest.approx(2.0)
    assert mapping.value(0.5) == pytest.approx(1.0)  # geometric middle
    assert mapping.value(7) == pytest.approx(2.0)  # clamped
