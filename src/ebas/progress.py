"""Progress and counter protocols, with a null implementation."""

from __future__ import annotations


class Progress:
    """Receives progress events; every method is optional to override."""

    def error(self, message: str) -> None:
        """A file or directory could not be backed up."""

    def file_done(self, path: str, size: int) -> None:
        """A file was processed."""


NULL_PROGRESS = Progress()
