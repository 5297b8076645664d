"""The patch's rhythm prompt and mood: `[continuation] rhythm`, taps, `[engine] mood` and its table.

Read when the patch is checked (so a missing rhythm file, a bad pattern or an unknown mood stops the
patch in one line naming the file and the key) and again when it compiles into ContinuationSettings,
the engine's terms: a parsed Rhythm, the chosen Mood, the whole table for `/mood`, a 0-based channel.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PatchError, RealtimeError
from .moods import choose, load_moods
from .rhythm import parse_rhythm


def answer_shape(patch) -> dict:
    """The ContinuationSettings fields a patch's rhythm and mood keys compile to."""
    path, e, c = patch.path, patch.engine, patch.continuation
    folder = Path(path).parent
    rhythm = None
    if c.rhythm is not None:
        try:
            rhythm = parse_rhythm(c.rhythm, folder)
        except RealtimeError as err:
            raise PatchError(f"{path}: [continuation] rhythm: {err}") from None
    if c.rhythm_tap_note is not None and not 0 <= c.rhythm_tap_note <= 127:
        raise PatchError(f"{path}: [continuation] rhythm_tap_note must be a MIDI note 0-127, got {c.rhythm_tap_note}")
    if not 1 <= c.rhythm_tap_channel <= 16:
        raise PatchError(f"{path}: [continuation] rhythm_tap_channel must be a MIDI channel 1-16, "
                         f"got {c.rhythm_tap_channel}")
    table = folder / Path(e.moods).expanduser() if e.moods else None
    moods = load_moods(table)
    mood = choose(moods, e.mood, f"{path}: [engine] mood") if e.mood is not None else None
    return {"rhythm": rhythm, "rhythm_folder": str(folder), "tap_note": c.rhythm_tap_note,
            "tap_channel": c.rhythm_tap_channel - 1, "mood": mood, "moods": tuple(moods.values())}
