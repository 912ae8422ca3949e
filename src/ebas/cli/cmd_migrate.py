"""``ebas migrate``: authenticate a legacy repository config (format version 1 -> 2)."""

from __future__ import annotations

import json

import click

from ebas.cli.app import command, get_env


@command("migrate")
@click.pass_context
def migrate_cmd(ctx):
    """Authenticate the repository config with the master key (format version 1 -> 2).

    Every setting is kept. Review the settings shown: migration vouches for them from now on.
    """
    from ebas import api

    env = get_env(ctx)
    repo = env.open_repo()
    res = api.migrate_repository(repo)
    if res.migrated:
        text = (f"repository config authenticated (format version {res.version_before} -> {res.version_after}); "
                "settings now protected:\n" + json.dumps(res.settings, indent=1, sort_keys=True))
    else:
        text = f"nothing to do: the repository config is already authenticated (format version {res.version_after})"
    env.emit(res.to_json(), text)


def register(cli: click.Group) -> None:
    """Add ``migrate`` to the command group."""
    cli.add_command(migrate_cmd)
