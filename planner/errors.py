"""Errors raised at Headroom's input boundaries.

Every problem with user input becomes one of these, carrying one clear sentence that names what is wrong
and what is expected. The CLI prints ``str(err)`` and exits 2; the app shows it in an error box.
"""

from __future__ import annotations


class HeadroomError(Exception):
    """Base class for every error a user can cause. ``str(err)`` is the one-line message to show."""


class ConfigError(HeadroomError, ValueError):
    """A model configuration is malformed, incomplete or absurd.

    ``field`` names the offending config field (``None`` when the problem is the document as a whole).
    """

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class InputError(HeadroomError, ValueError):
    """A workload, format, GPU or other choice is invalid (unknown name, negative batch, ...)."""


class SourceError(HeadroomError):
    """A model source (catalog name, file, hub repo) could not be read; the message says what to do."""
