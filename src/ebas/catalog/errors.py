"""Catalog errors: all are :class:`ebas.errors.EbasError`, so the CLI maps them to exit codes.

::

    CatalogError (exit 1)
    ├── CatalogUnavailable        the database cannot be reached or opened (URL shown without password)
    ├── CatalogCorrupt (exit 13)  the database file is damaged or not a catalog; rebuild it
    ├── CatalogMismatch           the catalog belongs to another repository or a newer ebas
    └── QueryTimeout              a query ran longer than its time limit
    QueryRejected (UsageError, exit 2)  an unsafe or malformed pattern
"""

from __future__ import annotations

from ebas.errors import EXIT_INTEGRITY, EbasError, UsageError


class CatalogError(EbasError):
    """Something is wrong with the catalog database."""

    default_hint = "the catalog is derived data: 'ebas catalog rebuild' recreates it from the repository"


class CatalogUnavailable(CatalogError):
    """The catalog database cannot be reached or opened."""

    default_hint = "check --catalog / EBAS_CATALOG and that the database server is running"


class CatalogCorrupt(CatalogError):
    """The catalog file is damaged or is not an ebas catalog."""

    exit_code = EXIT_INTEGRITY
    default_hint = "run 'ebas catalog rebuild' to recreate it from the repository"


class CatalogMismatch(CatalogError):
    """The catalog belongs to another repository, or was written by a newer ebas."""

    default_hint = "point --catalog at this repository's catalog, or run 'ebas catalog rebuild'"


class QueryTimeout(CatalogError):
    """A catalog query ran longer than its time limit."""

    default_hint = "narrow the query (a longer name pattern, --under, --host) or raise the time limit"


class QueryRejected(UsageError):
    """A pattern was refused because it is malformed or could run for too long."""
