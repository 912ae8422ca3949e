"""Layer 4: the thin ``ebas`` command line over :mod:`ebas.api`."""
