"""MIDI learn, saved: a binding the engine made (`/learn temperature`, or `l` in the view, then a moved
controller) is written into the patch's [[controls]] array, keeping the file's comments and layout.

The engine binds on its own thread (engine.py `_learn`) and queues the mapping; `save_learned` runs
outside the loop (the status loop or the view's timer). The file is rewritten only if the edited text
still parses as a valid patch, and atomically (realtime/patchedit.py).
"""

from __future__ import annotations

from pathlib import Path

import tomlkit

from .errors import RealtimeError
from .patchedit import edit_patch, edited_text
from .settings import ControlMapping


def _bind(mapping: ControlMapping):
    """An edit making `mapping` the target's one MIDI binding (other cc: sources for it removed)."""
    def edit(doc) -> None:
        if "controls" not in doc:
            doc.append("controls", tomlkit.aot())
        controls = doc["controls"]
        stale = [i for i, entry in enumerate(controls)
                 if entry.get("target") == mapping.target and str(entry.get("source", "")).startswith("cc:")]
        for i in reversed(stale):
            del controls[i]
        entry = tomlkit.table()
        entry.add("source", mapping.source)
        entry.add("target", mapping.target)
        entry.add("min", mapping.min)
        entry.add("max", mapping.max)
        if mapping.curve != "linear":
            entry.add("curve", mapping.curve)
        controls.append(entry)

    return edit


def bound_text(text: str, mapping: ControlMapping, path: str = "<patch>") -> str:
    """The patch text with `mapping` as the target's one MIDI binding (other cc: sources for it removed)."""
    return edited_text(text, _bind(mapping), path)


def save_binding(path: str | Path, mapping: ControlMapping) -> None:
    edit_patch(path, _bind(mapping), "the learned binding")


def save_learned(live) -> list[str]:
    """Save every binding the engine learned since the last call; one line each for the user."""
    lines = []
    learned = live.engine.learned
    while learned:
        mapping = learned.popleft()
        try:
            save_binding(live.patch.path, mapping)
            lines.append(f"learned {mapping.source} -> {mapping.target} ({mapping.min:g}-{mapping.max:g}); "
                         f"saved in {live.patch.path}")
        except RealtimeError as err:
            lines.append(f"learned {mapping.source} -> {mapping.target}, not saved: {err}")
    return lines
