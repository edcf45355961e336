"""Typed errors that reach the user as one line: what went wrong and what to do next.

Every module raises a subclass of :class:`DreamvidError`; the CLI prints ``str(error)`` (the message,
then the hint after " - ") and exits with ``error.exit_code``. Nothing else is shown unless ``--debug``.
"""

from __future__ import annotations


class DreamvidError(Exception):
    """Base class for errors a user can act on.

    Args:
        message: what went wrong, naming the offending file, key or value.
        hint: what to do about it (optional), e.g. "pass --overwrite to replace it".
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} - {self.hint}" if self.hint else self.message


class InputError(DreamvidError):
    """A missing, unreadable, corrupt or unsuitable input file or argument."""

    exit_code = 2


class PresetError(DreamvidError):
    """A bad preset name, key, value, `--set` override or schedule expression."""

    exit_code = 2


class ModelError(DreamvidError):
    """A model, layer, objective or weight file that cannot be used."""

    exit_code = 3


class EncodeError(DreamvidError):
    """ffmpeg failed to decode or encode, or the output cannot be written."""

    exit_code = 4
