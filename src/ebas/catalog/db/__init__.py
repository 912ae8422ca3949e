"""Catalog engines: SQLite (embedded) and PostgreSQL, behind ebas.catalog.db.base.Backend."""
