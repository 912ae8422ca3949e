"""The engine for scale: PostgreSQL through psycopg 3.

One database can hold the catalogs of many repositories: each lives in its own schema
(``ebas_<repository id prefix>`` unless the URL says ``?schema=NAME``). Bulk loads use
``COPY``; bulk updates and deletes go through a temporary table filled by ``COPY``. Name
search uses a ``pg_trgm`` GIN index on the dictionary of names (``LIKE``/``ILIKE``/``~``
all use it). Writers serialise on a transaction-level advisory lock per schema.
Every message names the database URL with the password replaced by ``***``.
"""

from __future__ import annotations

import itertools
import re
from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ebas.catalog.db.base import Backend, NameMatch
from ebas.catalog.errors import CatalogCorrupt, CatalogUnavailable, QueryRejected, QueryTimeout
from ebas.catalog.patterns import glob_has_class, glob_to_like, glob_to_regex, like_escape
from ebas.catalog.schema import POSTGRES_DDL

BULK_MIN = 64  # rows from which updates and deletes go through COPY + a temporary table
ANALYZE_AFTER = 50_000  # rows written by one ingest step after which the tables are re-analysed
_tmp = itertools.count()


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (in the authority and the query)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = userinfo + "@" + host
    query = "&".join(f"{k}=***" if k.lower() == "password" else f"{k}={v}"
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _password(url: str) -> str:
    try:
        parts = urlsplit(url)
        pw = parts.password or ""
        for k, v in parse_qsl(parts.query):
            if k.lower() == "password":
                pw = v
        return pw
    except ValueError:
        return ""


def split_schema(url: str, default: str) -> tuple[str, str]:
    """``(url without ?schema=, schema)``."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in pairs if k == "schema"), default)
    rest = urlencode([(k, v) for k, v in pairs if k != "schema"])
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise CatalogUnavailable(f"invalid schema name {schema!r} in the catalog URL",
                                 hint="use lower-case letters, digits and '_'")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


class PostgresBackend(Backend):
    """A catalog in a schema of a PostgreSQL database."""

    engine = "postgres"
    batch = 10_000

    def __init__(self, url: str, schema: str = "ebas", connect_timeout: int = 10):
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise CatalogUnavailable("PostgreSQL catalogs need the 'psycopg' package",
                                     hint="pip install 'psycopg[binary]'") from exc
        self._psycopg = psycopg
        conninfo, self.schema = split_schema(url, schema)
        self.location = redact(url)
        self._secret = _password(url)
        try:
            # prepare_threshold=None: every statement is planned with its actual values. A cached
            # generic plan cannot see the size of an "= ANY(array)" list and may scan a table once
            # per element.
            self.conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=connect_timeout,
                                        application_name="ebas-catalog", prepare_threshold=None)
        except psycopg.Error as exc:
            raise CatalogUnavailable(f"cannot connect to the catalog database {self.location}: "
                                     f"{self._clean(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - malformed conninfo and the like
            raise CatalogUnavailable(f"cannot connect to the catalog database {self.location}: "
                                     f"{self._clean(exc)}") from None
        self.x("SELECT set_config('search_path', ?, false)", [f'"{self.schema}", public'])
        self._limit: float | None = None

    def _clean(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self._secret:
            text = text.replace(self._secret, "***")
        return text

    def _translate(self, exc: Exception) -> Exception:
        errors = self._psycopg.errors
        if isinstance(exc, errors.QueryCanceled):
            return QueryTimeout(f"catalog query exceeded its time limit of {self._limit or 0:g} s")
        if isinstance(exc, (errors.InvalidRegularExpression, errors.InvalidEscapeSequence)):
            return QueryRejected(f"invalid pattern for PostgreSQL: {self._clean(exc)}")
        if isinstance(exc, (errors.UndefinedTable, errors.UndefinedColumn)):
            return CatalogCorrupt(f"the catalog schema {self.schema!r} in {self.location} is incomplete: "
                                  f"{self._clean(exc)}")
        if isinstance(exc, self._psycopg.OperationalError):
            return CatalogUnavailable(f"catalog database {self.location}: {self._clean(exc)}")
        return CatalogUnavailable(f"catalog database {self.location}: {self._clean(exc)}")

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    # ----------------------------------------------------------------- basics
    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass

    def q(self, sql: str, params: Sequence = ()) -> list[tuple]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(self._sql(sql), params)
                return cur.fetchall() if cur.description else []
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None

    def x(self, sql: str, params: Sequence = ()) -> int:
        try:
            with self.conn.cursor() as cur:
                cur.execute(self._sql(sql), params)
                return cur.rowcount
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None

    def xmany(self, sql: str, rows: Iterable[Sequence]) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), list(rows))
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None

    @contextmanager
    def write(self) -> Iterator[None]:
        self.set_deadline(None)
        try:
            with self.conn.transaction():
                self.x("SELECT pg_advisory_xact_lock(hashtext(?))", [self.schema])
                yield
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None

    def in_list(self, column: str, values: Sequence) -> tuple[str, list]:
        return f"{column} = ANY(?)", [list(values)]

    def set_deadline(self, seconds: float | None) -> None:
        if seconds == self._limit:
            return
        self._limit = seconds
        ms = 0 if seconds is None else max(1, int(seconds * 1000))
        self.x("SELECT set_config('statement_timeout', ?, false)", [f"{ms}ms"])

    # ------------------------------------------------------------------ bulk
    def insert_rows(self, table: str, columns: Sequence[str], rows: list[Sequence]) -> None:
        if not rows:
            return
        try:
            with self.conn.cursor() as cur:
                with cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as cp:
                    for r in rows:
                        cp.write_row(r)
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None

    def _temp(self, table: str, exprs: Sequence[str], cols: Sequence[str], rows: list[Sequence]) -> str:
        name = f"ebas_tmp_{next(_tmp)}"
        self.x(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {', '.join(exprs)} FROM {table} WITH NO DATA")
        self.insert_rows(name, cols, rows)
        return name

    def update_rows(self, table: str, set_col: str, key_cols: Sequence[str], rows: list[Sequence]) -> None:
        if len(rows) < BULK_MIN:
            return super().update_rows(table, set_col, key_cols, rows)
        tmp = self._temp(table, [f"{set_col} AS ebas_new"] + list(key_cols), ["ebas_new"] + list(key_cols), rows)
        where = " AND ".join(f"{table}.{c} = t.{c}" for c in key_cols)
        self.x(f"UPDATE {table} SET {set_col} = t.ebas_new FROM {tmp} t WHERE {where}")

    def delete_rows(self, table: str, key_cols: Sequence[str], rows: list[Sequence]) -> None:
        if len(rows) < BULK_MIN:
            return super().delete_rows(table, key_cols, rows)
        tmp = self._temp(table, key_cols, key_cols, rows)
        where = " AND ".join(f"{table}.{c} = t.{c}" for c in key_cols)
        self.x(f"DELETE FROM {table} USING {tmp} t WHERE {where}")

    # ---------------------------------------------------------------- schema
    def has_schema(self) -> bool:
        return bool(self.q("SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = 'meta'",
                           [self.schema]))

    def create_schema(self) -> None:
        self.x(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        if not self.q("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"):
            try:
                self.x(POSTGRES_DDL[0])
            except CatalogUnavailable as exc:
                if not self.q("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"):
                    raise CatalogUnavailable(f"{exc.message}; the pg_trgm extension is needed",
                                             hint="install PostgreSQL's contrib package and let the catalog user "
                                                  "create extensions (or run CREATE EXTENSION pg_trgm as admin)")
        for stmt in POSTGRES_DDL[1:]:
            self.x(stmt)

    def drop_schema(self) -> None:
        self.x(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    # ---------------------------------------------------------------- search
    def name_filter(self, match: NameMatch) -> tuple[str, list]:
        like = "ILIKE" if match.ignore_case else "LIKE"
        tilde = "~*" if match.ignore_case else "~"
        p = match.pattern
        if match.mode == "substring":
            return f"SELECT id FROM names WHERE name {like} ?", ["%" + like_escape(p) + "%"]
        if match.mode == "exact":
            if not match.ignore_case:
                return "SELECT id FROM names WHERE name = ?", [p]
            return "SELECT id FROM names WHERE name ILIKE ?", [like_escape(p)]
        if match.mode == "glob":
            if glob_has_class(p):
                return f"SELECT id FROM names WHERE name {tilde} ?", [glob_to_regex(p)]
            return f"SELECT id FROM names WHERE name {like} ?", [glob_to_like(p)]
        return f"SELECT id FROM names WHERE name {tilde} ?", [p]

    # ----------------------------------------------------------- maintenance
    def size_bytes(self) -> int:
        return int(self.one("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relkind = 'r'",
                            [self.schema]) or 0)

    def vacuum(self) -> None:
        self.set_deadline(None)
        for table in ("versions", "trees", "names", "dirs", "snapshots", "snapshot_sites", "tombstones"):
            self.x(f"VACUUM (ANALYZE) {table}")

    def analyze(self) -> None:
        """Refresh the planner's statistics."""
        self.x("ANALYZE")

    def after_bulk(self, rows: int) -> None:
        if rows >= ANALYZE_AFTER:  # fresh statistics before the next statement is planned
            for table in ("names", "dirs", "versions", "trees"):
                self.x(f"ANALYZE {table}")
