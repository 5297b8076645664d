"""The game's OSC API: /game/param, /game/state, /game/event and /transport/..., on an OscInput.

The routes are registered through `OscInput.register` (the table checks types and ranges); the
handlers here check names against the game's settings and hand a `GameMessage` to the mode. An
unknown name is dropped and counted as 'unknown-name' with one warning line, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InputError
from ..io.osc import AddressSpec, Arg
from ..settings import RANGES, GameSettings
from .game import GameMessage

_NAME = Arg("name", "str")
_BPM = Arg("bpm", "float", float(RANGES["tempo_bpm"].low), float(RANGES["tempo_bpm"].high))


class UnknownName(InputError):
    """A /game/ message names a parameter, state or event the patch does not define."""

    drop_kind = "unknown-name"


def game_routes(game: GameSettings, post: Callable[[GameMessage, int], None],
                now_ns: Callable[[], int]) -> list[tuple[str, AddressSpec, Callable]]:
    """(address, spec, handler) for every game and transport address; handlers call `post`."""
    params = {p.name: p for p in game.params}
    states = [s.name for s in game.states]
    events = [e.name for e in game.events]

    def known(kind: str, name: str, names) -> None:
        if name not in names:
            raise UnknownName(f"unknown game {kind} {name!r}; this patch knows: {', '.join(names) or 'none'}")

    def param(address: str, values: tuple) -> None:
        name, value = values
        known("parameter", name, list(params))
        p = params[name]
        if not p.min <= value <= p.max:
            raise InputError(f"game parameter {name} {value} is outside {p.min}-{p.max}")
        post(GameMessage("param", name, value), now_ns())

    def state(address: str, values: tuple) -> None:
        known("state", values[0], states)
        post(GameMessage("state", values[0]), now_ns())

    def event(address: str, values: tuple) -> None:
        known("event", values[0], events)
        post(GameMessage("event", values[0]), now_ns())

    def transport(kind: str) -> Callable:
        def handler(address: str, values: tuple) -> None:
            post(GameMessage(kind, value=float(values[0]) if values else 0.0), now_ns())
        return handler

    return [
        ("/game/param", AddressSpec((_NAME, Arg("value", "float")),
                                    "Set a game parameter; it glides there with the patch's smoothing_ms"), param),
        ("/game/state", AddressSpec((_NAME,), "Switch section (key, layers, tempo) at the next bar line"), state),
        ("/game/event", AddressSpec((_NAME,), "Play the event's stinger from the next beat"), event),
        ("/transport/tempo", AddressSpec((_BPM,), "Set the tempo from now on"),
         transport("tempo")),
        ("/transport/start", AddressSpec((), "Start: beat 0 of bar 0 a lookahead from now"), transport("start")),
        ("/transport/stop", AddressSpec((), "Stop: every note ends now"), transport("stop")),
    ]


def register_game_api(osc_input, game: GameSettings, post: Callable[[GameMessage, int], None]) -> None:
    """Register the game's addresses on an OscInput (replacing the reserved /game/ and /transport/)."""
    if hasattr(osc_input, "register_game"):  # the intake process builds the same routes on its side
        osc_input.register_game(game, post, GameMessage)
        return
    for address, spec, handler in game_routes(game, post, osc_input.clock.now_ns):
        osc_input.register(address, spec, handler)
