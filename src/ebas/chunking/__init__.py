"""Layer 0: cutting files and streams into chunks (FastCDC or fixed-size blocks)."""

from ebas.chunking.chunker import Chunker
from ebas.chunking.params import ChunkerParams, FixedBlockRule

__all__ = ["ChunkerParams", "FixedBlockRule", "Chunker"]
