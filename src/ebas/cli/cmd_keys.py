"""``ebas key add | list | remove | passwd``."""

from __future__ import annotations

import os

import click

from ebas.cli.app import get_env, group, read_password
from ebas.cli.render import local_time, table
from ebas.errors import UsageError


def _new_password(env) -> bytes:
    """The new password (bytes) from EBAS_NEW_PASSWORD, EBAS_NEW_PASSWORD_FILE or a prompt."""
    pw = read_password("EBAS_NEW_PASSWORD", os.environ.get("EBAS_NEW_PASSWORD_FILE"), "new password", True,
                       hint="set EBAS_NEW_PASSWORD or EBAS_NEW_PASSWORD_FILE")
    if not pw:
        raise UsageError("refusing an empty password")
    return pw


@group("key")
def key_group():
    """Manage the passwords (key files) that open the repository."""


@key_group.command("list")
@click.pass_context
def key_list(ctx):
    """List key files (a valid password is required)."""
    from ebas import api

    env = get_env(ctx)
    res = api.list_keys(env.open_repo())
    rows = [[("*" if k.id == res.current else " ") + k.id[:10], k.username, k.hostname,
             local_time(k.created) if k.created else "-", k.kdf, k.problem or ""] for k in res.keys]
    env.emit(res, table(["ID", "User", "Host", "Created", "KDF", "Problem"], rows))


@key_group.command("add")
@click.pass_context
def key_add(ctx):
    """Add a password (new key file) for the same master key (EBAS_NEW_PASSWORD or prompt)."""
    from ebas import api

    env = get_env(ctx)
    res = api.add_key(env.open_repo(), _new_password(env), kdf=env.kdf())
    env.emit(res, f"added key {res.added[:10]}")


@key_group.command("remove")
@click.argument("key_id")
@click.pass_context
def key_remove(ctx, key_id):
    """Remove key KEY_ID (not the one in use, never the last one)."""
    from ebas import api

    env = get_env(ctx)
    res = api.remove_key(env.open_repo(), key_id)
    env.emit(res, f"removed key {res.removed[:10]}")


@key_group.command("passwd")
@click.pass_context
def key_passwd(ctx):
    """Change the password of the key in use (EBAS_NEW_PASSWORD or prompt)."""
    from ebas import api

    env = get_env(ctx)
    res = api.change_password(env.open_repo(), _new_password(env), kdf=env.kdf())
    env.emit(res, f"password changed: key {res.old[:10]} replaced by {res.new[:10]}")


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(key_group)
