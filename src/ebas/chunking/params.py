"""Chunker parameters: a value recorded in the repository config.

Two repositories with equal parameters (and equal id keys) cut the same data into the
same chunks, which is what lets replication copy packs byte for byte.

``algorithm`` is ``fastcdc-keyed`` for repositories created since chunk boundaries are
keyed (the gear table is permuted by a secret derived from the repository's id key, see
:mod:`ebas.chunking.keyed`), or ``fastcdc`` (the package's public gear table) for older ones.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from ebas.errors import UsageError

KiB = 1024
MiB = 1024 * 1024


@dataclass(frozen=True)
class FixedBlockRule:
    """Files whose name matches ``pattern`` (glob on the base name, case-insensitive) and
    whose size is at least ``min_size`` are cut into fixed blocks of ``block_size`` bytes.

    Disk images and database files are rewritten in place in small aligned blocks; fixed
    blocks that match the writer's alignment deduplicate far better than CDC chunks.
    """

    pattern: str
    block_size: int
    min_size: int = 0

    def matches(self, name: str, size: int) -> bool:
        """True if a file called ``name`` with ``size`` bytes falls under this rule."""
        return size >= self.min_size and fnmatch.fnmatch(name.lower(), self.pattern.lower())


DEFAULT_FIXED_RULES: tuple[FixedBlockRule, ...] = tuple(
    FixedBlockRule(p, 16 * KiB, 64 * MiB)
    for p in (
        "*.img", "*.raw", "*.qcow2", "*.vmdk", "*.vdi", "*.vhd", "*.vhdx", "*.iso",
        "*.db", "*.sqlite", "*.sqlite3", "*.mdf", "*.ldf", "*.ndf", "*.ibd", "*.dbf",
    )
)


FASTCDC = "fastcdc"
FASTCDC_KEYED = "fastcdc-keyed"
ALGORITHMS = (FASTCDC, FASTCDC_KEYED)


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC sizes (min/avg/max bytes) plus fixed-block rules for image-like files.

    ``keyed`` (algorithm ``fastcdc-keyed``) means the chunker needs the repository's
    secret seed; the sizes and rules stay public in the config."""

    min_size: int = 256 * KiB
    avg_size: int = 1 * MiB
    max_size: int = 4 * MiB
    fixed_rules: tuple[FixedBlockRule, ...] = field(default=DEFAULT_FIXED_RULES)
    algorithm: str = "fastcdc"

    def __post_init__(self) -> None:
        if not (64 <= self.min_size <= self.avg_size <= self.max_size <= 256 * MiB):
            raise UsageError(
                f"invalid chunker sizes min={self.min_size} avg={self.avg_size} max={self.max_size}",
                hint="need 64 <= min <= avg <= max <= 256 MiB",
            )
        if self.avg_size < 256 or self.max_size < 1024:
            raise UsageError("chunker avg must be >= 256 bytes and max >= 1 KiB")
        if self.algorithm not in ALGORITHMS:
            raise UsageError(f"unknown chunker algorithm {self.algorithm!r}")
        for rule in self.fixed_rules:
            if not (512 <= rule.block_size <= 64 * MiB):
                raise UsageError(f"fixed block size {rule.block_size} out of range (512 B .. 64 MiB)")

    @property
    def keyed(self) -> bool:
        """True if chunk boundaries depend on the repository's secret seed."""
        return self.algorithm == FASTCDC_KEYED

    def fixed_block_for(self, name: str, size: int) -> int:
        """The fixed block size to use for this file, or 0 for content-defined chunks."""
        for rule in self.fixed_rules:
            if rule.matches(name, size):
                return rule.block_size
        return 0

    def to_dict(self) -> dict:
        """JSON-able form stored in the repository config."""
        return {
            "algorithm": self.algorithm,
            "min": self.min_size,
            "avg": self.avg_size,
            "max": self.max_size,
            "fixed_rules": [
                {"pattern": r.pattern, "block_size": r.block_size, "min_size": r.min_size}
                for r in self.fixed_rules
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ChunkerParams":
        """Inverse of :meth:`to_dict`."""
        return cls(
            algorithm=d.get("algorithm", "fastcdc"),
            min_size=int(d["min"]),
            avg_size=int(d["avg"]),
            max_size=int(d["max"]),
            fixed_rules=tuple(
                FixedBlockRule(r["pattern"], int(r["block_size"]), int(r.get("min_size", 0)))
                for r in d.get("fixed_rules", [])
            ),
        )
