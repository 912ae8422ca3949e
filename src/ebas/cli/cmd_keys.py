"""``ebas key add | list | remove | passwd``."""

from __future__ import annotations

import click

from ebas.cli.app import get_env, json_option
from ebas.cli.render import local_time, table
from ebas.errors import UsageError


def _new_password(env) -> bytes:
    import os

    from ebas.cli.app import read_password

    pw = read_password("EBAS_NEW_PASSWORD", os.environ.get("EBAS_NEW_PASSWORD_FILE"), "new password", True,
                       hint="set EBAS_NEW_PASSWORD or EBAS_NEW_PASSWORD_FILE")
    if not pw:
        raise UsageError("refusing an empty password")
    return pw


def _kdf():
    """None: production parameters (the CLI has no switch for weaker ones)."""
    return None


@click.group("key")
def key_group():
    """Manage the passwords (key files) that open the repository."""


@key_group.command("list")
@json_option
@click.pass_context
def key_list(ctx):
    """List key files (a valid password is required)."""
    from ebas.repo.keys import list_keys

    env = get_env(ctx)
    repo = env.open_repo()
    keys = list_keys(repo.store)
    rows = [[("*" if k.id == repo.key_id else " ") + k.id[:10], k.username, k.hostname,
             local_time(k.created) if k.created else "-", k.kdf, k.problem or ""] for k in keys]
    env.emit([dict(k.to_dict(), current=k.id == repo.key_id) for k in keys],
             table(["ID", "User", "Host", "Created", "KDF", "Problem"], rows))


@key_group.command("add")
@json_option
@click.pass_context
def key_add(ctx):
    """Add a password (new key file) for the same master key (EBAS_NEW_PASSWORD or prompt)."""
    from ebas.repo.keys import add_key
    from ebas.repo.repository import _whoami

    env = get_env(ctx)
    repo = env.open_repo()
    host, user = _whoami()
    kid = add_key(repo.store, repo.master, _new_password(env), entropy=repo.entropy, clock=repo.clock,
                  hostname=host, username=user, kdf=_kdf())
    env.emit({"added": kid}, f"added key {kid[:10]}")


@key_group.command("remove")
@click.argument("key_id")
@json_option
@click.pass_context
def key_remove(ctx, key_id):
    """Remove key KEY_ID (not the one in use, never the last one)."""
    from ebas.repo.keys import remove_key

    env = get_env(ctx)
    repo = env.open_repo()
    removed = remove_key(repo.store, key_id, current_key_id=repo.key_id)
    env.emit({"removed": removed}, f"removed key {removed[:10]}")


@key_group.command("passwd")
@json_option
@click.pass_context
def key_passwd(ctx):
    """Change the password of the key in use (EBAS_NEW_PASSWORD or prompt)."""
    from ebas.repo.keys import change_password
    from ebas.repo.repository import _whoami

    env = get_env(ctx)
    repo = env.open_repo()
    host, user = _whoami()
    kid = change_password(repo.store, repo.master, repo.key_id, _new_password(env), entropy=repo.entropy,
                          clock=repo.clock, hostname=host, username=user, kdf=_kdf())
    env.emit({"old": repo.key_id, "new": kid}, f"password changed: key {repo.key_id[:10]} replaced by {kid[:10]}")


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(key_group)
