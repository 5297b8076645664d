"""Listening: the chord, key, tempo and beat phase, density and dynamics of the player's live notes.

`Listener` (listener.py) is fed by the engine and read by every mode through `snapshot()`;
chords.py, keys.py and tempo.py hold the analyses, osc.py sends them as `/listen/*` messages.
"""

from .listener import Chord, Key, Listener, ListenState, Tempo

__all__ = ["Chord", "Key", "ListenState", "Listener", "Tempo"]
