"""Fixtures for the catalog suite: both engines, real repositories, and a brute-force oracle.

Every catalog test that takes ``engine`` runs twice: against SQLite and against a real
PostgreSQL server (the one on 127.0.0.1:5432 if it answers, else a throwaway cluster this
session starts and stops; one database per test run, one schema per catalog).
"""

from __future__ import annotations

import itertools
import os
import time

import pytest
from catalog_helpers import RepoBuilder

_n = itertools.count()


# ------------------------------------------------------------------ engines
@pytest.fixture(scope="session")
def pg_url():
    """A database on a real PostgreSQL server for this test run (created and dropped here)."""
    from ebas.catalog.testing import PostgresServer

    server = PostgresServer.start()
    name = f"ebas_test_{os.getpid()}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        try:
            server.drop_database(name)
        finally:
            server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request) -> str:
    return request.param


@pytest.fixture
def new_location(engine, tmp_path, request):
    """A factory of fresh catalog locations for the current engine."""

    def make() -> str:
        if engine == "sqlite":
            return str(tmp_path / f"catalog-{next(_n)}.sqlite")
        url = request.getfixturevalue("pg_url")
        return f"{url}?schema=t{os.getpid()}_{next(_n)}"

    return make


# --------------------------------------------------------------- repositories
@pytest.fixture
def builder(tmp_path):
    b = RepoBuilder(str(tmp_path / "data"))
    yield b
    b.close()


@pytest.fixture
def wait():
    """Sleep a little so ctime-based change detection sees a change."""
    return lambda: time.sleep(0.01)
