"""One error base for users to catch, with builtin mixins so `except ValueError` works too."""


class RealtimeError(Exception):
    """Base of every error realtime raises on purpose; its message is one line for the user."""


class InputError(RealtimeError, ValueError):
    """Bad input data: a note out of range, a malformed file or message."""


class ModelFileError(RealtimeError, ValueError):
    """A model file or its metadata is missing, corrupt, or does not match."""


class PatchError(RealtimeError, ValueError):
    """A patch file has a syntax or schema error."""


class PortError(RealtimeError, OSError):
    """A MIDI, OSC or audio port cannot be opened or has gone away."""


class MemoryFileError(RealtimeError, ValueError):
    """A memory file (the duet's Markov model of the player) cannot be read or written."""


class LeadSheetError(RealtimeError, ValueError):
    """A chord progression (text, Roman numerals or a MIDI file) that cannot be read; names the token at fault."""
