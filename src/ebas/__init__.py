"""ebas: an enterprise backup archive system (deduplicating, encrypted, verifiable)."""

__version__ = "0.1.0"
