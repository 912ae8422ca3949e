"""The engine contract: what the catalog needs from a database, whatever it is.

SQL handed to an engine is written once with ``?`` placeholders and portable syntax
(``INSERT ... ON CONFLICT DO NOTHING``, ``UPDATE ... FROM``); an engine translates the
placeholders and supplies what differs: bulk loading, lists as parameters, name search,
regular expressions, sizes and maintenance. Writes happen inside :meth:`Backend.write`,
an exclusive transaction per catalog (one writer at a time; readers never block).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence


@dataclass(frozen=True)
class NameMatch:
    """How to match entry names: ``mode`` is substring, glob, exact or regex."""

    mode: str
    pattern: str
    ignore_case: bool = False
    literals: tuple[str, ...] = ()  # runs of plain characters the name must contain (for trigrams)


class Backend:
    """One catalog database. Subclasses: :class:`~ebas.catalog.db.sqlite.SqliteBackend`,
    :class:`~ebas.catalog.db.postgres.PostgresBackend`."""

    engine = ""
    location = ""  # for messages; never contains a password
    batch = 500  # parameters per IN list

    # ------------------------------------------------------------- basics
    def close(self) -> None:
        raise NotImplementedError

    def q(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Rows of a query."""
        raise NotImplementedError

    def x(self, sql: str, params: Sequence = ()) -> int:
        """Execute a statement; the number of rows it changed."""
        raise NotImplementedError

    def xmany(self, sql: str, rows: Iterable[Sequence]) -> None:
        """Execute a statement once per parameter row."""
        raise NotImplementedError

    def one(self, sql: str, params: Sequence = ()):
        """The first column of the first row, or None."""
        rows = self.q(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def write(self) -> Iterator[None]:
        """An exclusive write transaction: committed on success, rolled back on any error."""
        raise NotImplementedError
        yield  # pragma: no cover

    # -------------------------------------------------------------- schema
    def has_schema(self) -> bool:
        raise NotImplementedError

    def create_schema(self) -> None:
        raise NotImplementedError

    def drop_schema(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- bulk
    def insert_rows(self, table: str, columns: Sequence[str], rows: list[Sequence]) -> None:
        """Insert many rows (PostgreSQL: COPY)."""
        if not rows:
            return
        marks = ",".join("?" * len(columns))
        self.xmany(f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})", rows)

    def update_rows(self, table: str, set_col: str, key_cols: Sequence[str], rows: list[Sequence]) -> None:
        """``UPDATE table SET set_col = row[0] WHERE key_cols = row[1:]`` for every row."""
        if not rows:
            return
        where = " AND ".join(f"{c} = ?" for c in key_cols)
        self.xmany(f"UPDATE {table} SET {set_col} = ? WHERE {where}", rows)

    def delete_rows(self, table: str, key_cols: Sequence[str], rows: list[Sequence]) -> None:
        """Delete the rows with these keys."""
        if not rows:
            return
        where = " AND ".join(f"{c} = ?" for c in key_cols)
        self.xmany(f"DELETE FROM {table} WHERE {where}", rows)

    def after_bulk(self, rows: int) -> None:
        """``rows`` rows were just written in bulk (engines may refresh planner statistics)."""

    def names_added(self, rows: list[Sequence]) -> None:
        """New ``(id, name, raw)`` rows were inserted into ``names`` (engines with a
        separate name index update it here)."""

    def names_removed(self) -> None:
        """Rows were deleted from ``names``."""

    def in_list(self, column: str, values: Sequence) -> tuple[str, list]:
        """``(sql, params)`` for ``column IN (values)`` with any number of values."""
        raise NotImplementedError

    # --------------------------------------------------------------- search
    def name_filter(self, match: NameMatch) -> tuple[str, list]:
        """``(sql, params)``: a SELECT of the ``names.id`` whose name matches."""
        raise NotImplementedError

    def set_deadline(self, seconds: float | None) -> None:
        """Abort queries that run longer than ``seconds`` (None: no limit)."""

    # ---------------------------------------------------------- maintenance
    def size_bytes(self) -> int:
        raise NotImplementedError

    def vacuum(self) -> None:
        raise NotImplementedError

    def integrity(self) -> list[str]:
        """Problems found by the engine's own consistency check (empty: fine)."""
        return []


def chunks(values: Sequence, n: int) -> Iterator[Sequence]:
    """Consecutive slices of at most ``n`` values."""
    for i in range(0, len(values), n):
        yield values[i : i + n]
