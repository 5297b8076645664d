"""[game]'s checks: ranges, and every name a voice, state, event or map refers to (realtime/patch.py calls
`check_game` once the section is read; the shared helpers are realtime/patchcheck.py's)."""

from __future__ import annotations

from .patchcheck import check_between, check_channel, check_key, check_pitch_limits, check_shared, fail
from .model.controls import ROLES
from .settings import GAME_CONTROLS, GAME_CURVES


def check_game(path: str, game) -> None:
    """[game]: ranges, and every name a voice, state or map refers to."""
    check_between(path, "game", "beats_per_bar", game.beats_per_bar, 1, 16)
    check_between(path, "game", "smoothing_ms", game.smoothing_ms, 0, 60_000)
    check_between(path, "game", "lookahead_ms", game.lookahead_ms, 5, 1000)
    if not game.voices or not game.states:
        fail(path, "game", "needs at least one [game.voices.NAME] and one [game.states.NAME]")
    params, voices = {p.name for p in game.params}, {v.name for v in game.voices}
    for p in game.params:
        if not p.min < p.max or not p.min <= p.initial <= p.max:
            fail(path, f"game.params.{p.name}",
                  f"needs min < max and initial within them, got {p.min}, {p.max}, {p.initial}")
    for v in game.voices:
        where = f"game.voices.{v.name}"
        check_channel(path, where, "channel", v.channel)
        check_pitch_limits(path, where, v.lowest, v.highest, v.max_polyphony)
        for control in ("register", "density", "polyphony", "dynamics", "gain", "temperature"):
            check_shared(path, where, control, getattr(v, control))
        if v.enter_param is not None and v.enter_param not in params:
            fail(path, where,
                  f"enter_param {v.enter_param!r} is not a [game.params] name ({', '.join(params) or 'none'})")
        if v.role is not None and v.role not in ROLES:
            fail(path, where, f"role must be one of {', '.join(ROLES)}, got {v.role!r}")
        if v.osc_prefix is not None and (not v.osc_prefix.startswith("/") or v.osc_prefix.endswith("/")):
            fail(path, where, f"osc_prefix must look like '/melody', got {v.osc_prefix!r}")
    for st in game.states:
        where = f"game.states.{st.name}"
        check_key(path, where, st.key)
        unknown = [v for v in st.voices if v not in voices]
        if unknown:
            fail(path, where, f"voices {unknown} are not [game.voices] names ({', '.join(voices)})")
        check_shared(path, where, "tempo_bpm", st.tempo_bpm)
    if game.initial_state is not None and game.initial_state not in {st.name for st in game.states}:
        fail(path, "game", f"initial_state {game.initial_state!r} is not a [game.states] name")
    for ev in game.events:
        where = f"game.events.{ev.name}"
        if not ev.notes or not all(-48 <= n <= 48 for n in ev.notes) or not 0 <= ev.base <= 127:
            fail(path, where, "notes must be 1 or more semitone offsets within -48..48, and base a MIDI pitch")
        if not (0.01 <= ev.step_beats <= 16 and 0.01 <= ev.duration_beats <= 16):
            fail(path, where, "step_beats and duration_beats must be 0.01-16")
        if not 1 <= ev.velocity <= 127 or not 1 <= ev.channel <= 16:
            fail(path, where, f"velocity must be 1-127 and channel 1-16, got {ev.velocity}, {ev.channel}")
    for i, m in enumerate(game.maps):
        where = f"game.map #{i + 1}"
        if m.param not in params:
            fail(path, where, f"param {m.param!r} is not a [game.params] name ({', '.join(params) or 'none'})")
        if m.control not in GAME_CONTROLS:
            fail(path, where, f"control must be one of {', '.join(GAME_CONTROLS)}, got {m.control!r}")
        r = GAME_CONTROLS[m.control]
        if not (m.min in r and m.max in r):
            fail(path, where, f"min and max for {m.control} must lie in {r.low}..{r.high}")
        if m.curve not in GAME_CURVES:
            fail(path, where, f"curve must be one of {', '.join(GAME_CURVES)}, got {m.curve!r}")
        unknown = [v for v in m.voices if v not in voices]
        if unknown:
            fail(path, where, f"voices {unknown} are not [game.voices] names")
