"""Store backends. Each backend class has a ``from_url(url, **options)`` classmethod.

Backends are imported lazily by :func:`ebas.storage.registry.open_store`, so a backend
whose SDK is not installed costs nothing until its scheme is used.
"""
