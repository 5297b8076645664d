"""One table of ranges and defaults: the patch check, the OSC tables, the model's controls and the READMEs agree
with it, and a patch compiles into the settings the engine runs with."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from realtime.engine.gameosc import game_routes
from realtime.errors import PatchError
from realtime.io.oscaddress import ADDRESS_TABLE
from realtime.model import controls as ctl
from realtime.patch import compile_patch, load_patch, parse_patch
from realtime.settings import CONTROL_TARGETS, GAME_CONTROLS, RANGES, ranges_table_markdown, sampling

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
GAME = {"engine": {"mode": "game"}, "game": {"voices": {"lead": {}}, "states": {"a": {"voices": ["lead"]}},
                                             "params": {"p": 0.5}}}


def _rows(text: str, header: str) -> list[list[str]]:
    """The cells of a markdown table's rows, the table found by its header line."""
    lines = text[text.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _number(text: str) -> float | None:
    return None if text == "-" else float(text)


def test_the_readme_patch_values_table_is_the_settings_table():
    rows = _rows(README, "| value | range | default | unit | meaning | set by |")
    assert [row[0].strip("`") for row in rows] == list(RANGES)
    for name, span, default, unit, meaning, _ in rows:
        r = RANGES[name.strip("`")]
        low, high = (float(x) for x in span.split("-"))
        assert (low, high, _number(default)) == (r.low, r.high, r.default), name
        assert unit == (r.unit or "-") and meaning == r.doc
    assert ranges_table_markdown() in README


def test_the_osc_tables_take_the_tempo_and_control_names_from_the_table():
    tempo = RANGES["tempo_bpm"]
    game_table = "| Address | Arguments | Meaning |\n| --- | --- | --- |\n| `/game/param`"
    game_rows = {row[0]: row for row in _rows(README, game_table)}
    assert game_rows["`/transport/tempo`"][1] == f"bpm:float {tempo.span()}"
    routes = {address: spec for address, spec, _ in game_routes(compile_patch(parse_patch(GAME)).game,
                                                               lambda m, t: None, lambda: 0)}
    (bpm,) = routes["/transport/tempo"].args
    assert (bpm.low, bpm.high) == (tempo.low, tempo.high)
    learn = next(route for route in ADDRESS_TABLE if route.pattern == "/learn")
    named = re.search(r"control \(([^)]*)\)", learn.spec.meaning).group(1).split(", ")
    assert named == list(CONTROL_TARGETS)
    readme_learn = next(row for row in _rows(README, "| Address | Arguments | Meaning |") if row[0] == "`/learn`")
    assert f"({', '.join(CONTROL_TARGETS)})" in readme_learn[2]


def test_the_models_readme_and_the_model_controls_share_the_ranges():
    models_readme = (ROOT / "models" / "README.md").read_text()
    rows = {row[1].strip("`"): row for row in _rows(models_readme, "| index | control | unit | range |")}
    for name in ("density", "polyphony", "register", "dynamics"):
        r, spec = RANGES[name], ctl.CONTROLS[ctl.INDEX[name]]
        assert (spec.low, spec.high, spec.unit, spec.meaning) == (r.low, r.high, r.unit, r.doc)
        assert rows[name][3] == r.span()


def _refused(raw: dict) -> str:
    with pytest.raises(PatchError) as info:
        parse_patch(raw, "x.toml")
    return str(info.value)


@pytest.mark.parametrize("name", list(RANGES))
def test_every_place_a_patch_sets_a_shared_value_accepts_exactly_its_range(name):
    r = RANGES[name]
    step = 1 if isinstance(r.low, int) and isinstance(r.high, int) else 0.01
    places = {  # where each value can be written, as a function of the value
        "tempo_bpm": [lambda v: {"engine": {"tempo_bpm": v}},
                      lambda v: GAME | {"game": GAME["game"] | {"states": {"a": {"voices": ["lead"],
                                                                                   "tempo_bpm": v}}}}],
        "temperature": [lambda v: {"model": {"temperature": v}}],
        "top_p": [lambda v: {"model": {"top_p": v}}],
        "style_guidance": [lambda v: {"model": {"style_guidance": v}}],
        "answer_notes": [lambda v: {"continuation": {"answer_notes": v}}],
        "phrase_end_ms": [lambda v: {"continuation": {"phrase_end_ms": v}}],
        "blend": [lambda v: {"continuation": {"blend": v}}],
    }.get(name, [])
    if name in GAME_CONTROLS:  # a voice's own value, and a map's range
        places.append(lambda v: GAME | {"game": GAME["game"] | {"voices": {"lead": {name: v}}}})
        places += [lambda v, end=end: GAME | {"game": GAME["game"] | {"map": [{"param": "p", "control": name, end: v}]}}
                   for end in ("min", "max")]
    if name in CONTROL_TARGETS:
        places += [lambda v, end=end: {"controls": [{"source": "cc:1", "target": name, end: v}]}
                   for end in ("min", "max")]
    assert places, f"{name} is set nowhere in a patch"
    for place in places:
        for inside in (r.low, r.high):
            parse_patch(place(inside), "x.toml")
        for outside in (r.low - step, r.high + step):
            assert name in _refused(place(outside))


def test_a_patch_compiles_into_engine_settings():
    raw = {"engine": {"mode": "game", "tempo_bpm": 90},
           "model": {"top_p": 0.5},
           "continuation": {"channel": 3},
           "controls": [{"source": "cc:1", "target": "temperature"}],
           "game": {"voices": {"lead": {"channel": 10}, "bass": {"channel": 1, "density": 1.0}},
                    "states": {"first": {"voices": ["lead"]}, "second": {"voices": ["bass"]}},
                    "events": {"hit": {"channel": 16}}}}
    settings = compile_patch(parse_patch(raw))
    assert settings.tempo_bpm == 90 and settings.continuation.tempo_bpm == 90 and settings.continuation.channel == 2
    assert [v.channel for v in settings.game.voices] == [9, 0] and settings.game.events[0].channel == 15
    assert settings.game.initial_state == "first"
    lead = settings.game.voices[0]
    assert (lead.density, lead.polyphony, lead.register, lead.dynamics, lead.gain) == tuple(
        RANGES[n].default for n in ("density", "polyphony", "register", "dynamics", "gain"))
    whole = CONTROL_TARGETS["temperature"]
    assert (settings.controls[0].min, settings.controls[0].max) == (whole.low, whole.high)
    assert sampling({"sampling": {"temperature": 0.8, "top_p": 0.9}}, None, settings.model.top_p) == (0.8, 0.5)
    assert sampling({}, None, None) == (RANGES["temperature"].default, RANGES["top_p"].default)


def test_the_shipped_game_patch_compiles_with_zero_based_channels():
    patch = load_patch(ROOT / "patches" / "game.toml")
    settings = compile_patch(patch)
    assert [v.channel for v in settings.game.voices] == [v.channel - 1 for v in patch.game.voices]
    assert [e.channel for e in settings.game.events] == [e.channel - 1 for e in patch.game.events]


def test_nothing_under_engine_imports_the_patch_schema():
    for module in sorted((ROOT / "realtime" / "engine").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                assert not re.fullmatch(r"(\.\.|realtime\.)patch(check)?", target), f"{module.name} imports {target}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("realtime.patch") for a in node.names), module.name
