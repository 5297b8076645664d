"""Change a patch file in place the way a user would by hand: comments and layout kept (tomlkit), the
result checked as a patch before anything is written, and written atomically (a temporary file renamed
over it). MIDI learn saves its bindings and `realtime calibrate` its latency through here."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path

import tomlkit

from .errors import PatchError
from .patch import parse_patch

Edit = Callable[[tomlkit.TOMLDocument], None]


def edited_text(text: str, edit: Edit, path: str = "<patch>") -> str:
    """The patch text after `edit` changed its document; PatchError (naming `path`) if it would not load."""
    doc = tomlkit.parse(text)
    edit(doc)
    out = tomlkit.dumps(doc)
    parse_patch(tomllib.loads(out), path)  # never write a patch that would not load
    return out


def edit_patch(path: str | Path, edit: Edit, what: str) -> None:
    """Apply `edit` to the patch file at `path`; `what` names the change in an error (`the learned binding`)."""
    path = Path(path)
    try:
        out = edited_text(path.read_text(), edit, str(path))
        temporary = path.with_name(f".{path.name}.edit")
        temporary.write_text(out)
        os.replace(temporary, path)
    except OSError as err:
        raise PatchError(f"{path}: could not save {what} ({err.strerror or err})") from None
