"""The patch's styles against its model's card: `[engine] style` and `[game.states.NAME] style`.

A style is a `style_NAME` control of the model (realtime/model/controls.py); only a stage model's card
lists them. The card is read when the patch is checked (its JSON only, no session), so a style the
model lacks stops the patch in one line naming the file, the key and the styles the model has, before
any port opens. A patch naming no style reads no card.
"""

from __future__ import annotations

from .errors import ModelFileError
from .model import controls as ctl
from .model.modelfile import check_controls, load_metadata, resolve_model
from .patchcheck import fail


def model_styles(model: str) -> tuple[str, ...]:
    """The styles a model's card lists, in card order (none for a model without style controls)."""
    path = resolve_model(model)
    specs = check_controls(path, load_metadata(path))
    return ctl.styles_of({spec["name"]: spec["index"] for spec in specs})


def check_styles(path: str, patch) -> None:
    """Every style the patch names is one of its [model]'s."""
    named = [("engine", patch.engine.style)]
    named += [(f"game.states.{state.name}", state.style) for state in (patch.game.states if patch.game else ())]
    named = [(where, style) for where, style in named if style is not None]
    if not named:
        return
    try:
        styles = model_styles(patch.model.name)
    except ModelFileError as err:
        fail(path, named[0][0], f"style {named[0][1]!r} needs the model's card ({err})")
    for where, style in named:
        if style not in styles:
            has = f"its styles: {', '.join(styles)}" if styles else f"it has no style controls; a stage model has " \
                                                                     f"{', '.join(ctl.STYLES)}"
            fail(path, where, f"style {style!r} is not a style of model {patch.model.name} ({has})")
