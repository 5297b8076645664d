"""What a stage model hears besides the music: the style, the voice's role, and the harmony sounding now.

The stage models' cards (realtime/model/controls.py) list three 0/1 groups after the measured controls:
`chord0-11` and `root0-11` (the harmony at the predicted note's beat), `role_*` (melody, bass, inner,
texture) and `style_*` (chorale, irish, fiddle, folk); all zeros in a group means "not known". Every
mode that plays the model writes them into its control row through a `StageControls`, by the names
the card lists: a model without a group (game-lstm, bach-folk-lstm) lacks the names and nothing is written.

A style chosen live (OSC `/style NAME`, a MIDI program change: the N-th style of the card) waits as
`pending` until the mode's next bar line (`due`); a bad name is refused in one line and the style
playing goes on. Modes write at bar lines, section changes and chord changes, never per note; the
harmony is kept as a 12-bit mask and a root, so a chord that did not change writes nothing.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..model import controls as ctl

OFF = "off"  # `/style off`: no style (the group all zeros)


def listener_bar_ns(listener, now_ns: int, beats_per_bar: int) -> int:
    """The first bar line at or after now of the listener's beat (bars of `beats_per_bar` from the beat it last
    heard fall); now while no tempo has been heard (there are no bars to wait for)."""
    tempo = listener.snapshot(now_ns).tempo if listener is not None else None
    if tempo is None or tempo.bpm is None:
        return now_ns
    bar_ns = tempo.ns_per_beat * beats_per_bar
    bars = math.ceil((now_ns - tempo.anchor_ns) / bar_ns)
    return max(now_ns, int(tempo.anchor_ns + bars * bar_ns))


def voice_role(role: str | None, polyphony: float, max_polyphony: int | None, register: float) -> str:
    """A game voice's role: its `role` key, else chords (polyphony 1.5 or more, or max_polyphony above 1 with
    polyphony above 1) -> texture, a register below G3 (MIDI 55) -> bass, anything else -> melody."""
    if role is not None:
        return role
    if polyphony >= 1.5 or (max_polyphony is not None and max_polyphony > 1 and polyphony > 1.0):
        return "texture"
    return "bass" if register < 55 else "melody"


def style_refusal(source: str, name: str, styles: tuple[str, ...]) -> str | None:
    """One line when `name` is not a style of the model (None when it is, or is `off`)."""
    if name == OFF or name in styles:
        return None
    if not styles:
        return f"{source} {name!r}: this model has no style controls (a stage model has: {', '.join(ctl.STYLES)})"
    return f"{source} {name!r}: not a style of this model (its styles: {', '.join(styles)})"


def require_style(source: str, name: str | None, index: dict[str, int]) -> None:
    """Offline (`--style`): a style the model's card lacks is an error, its one line naming the styles it has."""
    refusal = style_refusal(source, name, ctl.styles_of(index)) if name is not None else None
    if refusal is not None:
        raise InputError(refusal)


class StageControls:
    """One mode's style (playing and pending), and its writes of style, role and harmony into control rows."""

    def __init__(self, index: dict[str, int], style: str | None = None) -> None:
        self.styles, self.roles = ctl.styles_of(index), ctl.roles_of(index)
        self._index, self._chord0 = index, index.get("chord0")
        self.style = style if style in self.styles else None  # the patch checked it against the card
        self.pending: str | None = None  # a style waiting for its bar line (OFF: none)
        self.pending_at_ns: int | None = None
        self._mask, self._root = -1, -2  # the harmony written last (-1: nothing written yet)
        self.switches = self.refused = 0

    @property
    def active(self) -> bool:
        """The model hears at least one of the groups."""
        return bool(self.styles or self.roles or self._chord0 is not None)

    def describe(self) -> str:
        """The status line's part: the style playing (and one waiting for its bar); "" for a model without styles."""
        if not self.styles:
            return ""
        waiting = f" -> {self.pending} at the bar" if self.pending is not None else ""
        return f"style {self.style or '-'}{waiting}"

    # --- choosing the style ------------------------------------------------------------------------
    def request(self, name: str, at_ns: int, source: str = "/style") -> str | None:
        """A style from this bar line on (`at_ns`); a name the card lacks is refused: the one line, else None."""
        refusal = style_refusal(source, name, self.styles)
        if refusal is not None:
            self.refused += 1
            return refusal
        self.pending, self.pending_at_ns = name, at_ns
        return None

    def by_program(self, program: int, at_ns: int) -> str | None:
        """Program N (0-based, as on the wire) -> the card's N-th style; one line for a program past the list."""
        if program >= len(self.styles):
            self.refused += 1
            listed = ", ".join(f"{i} {s}" for i, s in enumerate(self.styles)) or "none"
            return f"program change {program} ignored: this model has {len(self.styles)} styles ({listed})"
        return self.request(self.styles[program], at_ns, f"program change {program}:")

    def due(self, now_ns: int) -> bool:
        """The pending style takes over once its bar line has come; True when the style changed."""
        if self.pending is None or now_ns < self.pending_at_ns:
            return False
        chosen = None if self.pending == OFF else self.pending
        self.pending = self.pending_at_ns = None
        changed, self.style = chosen != self.style, chosen
        self.switches += changed
        return changed

    # --- writing a control row (a view of one stream's row) -----------------------------------------
    def write_style(self, row: np.ndarray, style: str | None = None) -> None:
        """The style (the one playing, unless given) into a row; none: the group all zeros."""
        if self.styles:
            ctl.set_one_hot(row, self._index, "style_", self.style if style is None else style)

    def write_role(self, row: np.ndarray, role: str | None) -> None:
        if self.roles:
            ctl.set_one_hot(row, self._index, "role_", role)

    def write_harmony(self, row: np.ndarray, pitch_classes, root: int | None) -> bool:
        """The harmony sounding now (pitch classes, its root; empty and None: not known) into one row, when it
        differs from the one written last; True when it did."""
        if self._chord0 is None:
            return False
        mask = 0
        for pc in pitch_classes:
            mask |= 1 << (pc % 12)
        key = -2 if root is None else root % 12
        if mask == self._mask and key == self._root:
            return False
        self._mask, self._root = mask, key
        ctl.set_harmony(row, self._index, pitch_classes, root)
        return True

    def forget_harmony(self) -> None:
        """The next `write_harmony` writes whatever it is given (the row was reset elsewhere)."""
        self._mask, self._root = -1, -2
