"""``ebas synthesize`` and ``ebas export``."""

from __future__ import annotations

import os

import click

from ebas.cli.app import command, get_env, read_password_file
from ebas.cli.render import human_size


@command("synthesize")
@click.argument("snapshot")
@click.option("--consolidate", is_flag=True, help="also copy the snapshot's blobs into fresh packs in restore order")
@click.option("--tag", "tags", multiple=True, help="add a tag to the new snapshot (repeatable)")
@click.pass_context
def synthesize_cmd(ctx, snapshot, consolidate, tags):
    """Make a new full snapshot from SNAPSHOT without reading the source.

    It starts a new chain: later differentials and incrementals build on it. After
    --consolidate, run prune to drop the old copies (restores then read the new packs).
    """
    from ebas import api

    env = get_env(ctx)
    res = api.synthesize(env.open_repo(), snapshot, consolidate=consolidate, tags=list(tags))
    text = f"synthetic full {res.snapshot.id[:8]} made from {res.source.id[:8]} ({res.source.level})"
    if consolidate:
        text += (f"\nconsolidated {res.blobs_copied} blobs ({human_size(res.bytes_copied)}) into "
                 f"{res.packs_written} new pack(s) in restore order; run 'ebas prune' to drop the old copies")
    env.emit(res, text)


@command("export")
@click.argument("snapshot")
@click.option("--to", "to_url", required=True, metavar="URL", help="a new, empty location (or an earlier export's)")
@click.option("--to-password-file", metavar="FILE",
              help="password of the new repository (env EBAS_TO_PASSWORD; default: this repository's)")
@click.option("--new-key", is_flag=True, help="re-encrypt under a fresh key instead of sharing this repository's")
@click.pass_context
def export_cmd(ctx, snapshot, to_url, to_password_file, new_key):
    """Copy SNAPSHOT into a self-contained new repository at --to (for tape, cold cloud)."""
    from ebas import api

    env = get_env(ctx)
    repo = env.open_repo()
    if to_password_file:
        password = read_password_file(to_password_file)
    else:
        password = os.environb.get(b"EBAS_TO_PASSWORD") or env.password()
    from ebas.cli.progressview import emit_summary, progress_view

    with progress_view(env) as progress:
        res = api.export(repo, snapshot, to_url, password, new_key=new_key, kdf=env.kdf("argon2id"), progress=progress)
    emit_summary(env, res, f"exported snapshot {res.source.id[:8]} to {api.redact_url(to_url)} as {res.snapshot.id[:8]}: "
                  f"{res.blobs_copied} blobs ({human_size(res.bytes_copied)}) copied, "
                  f"{res.blobs_present} already there"
                  + ("; re-encrypted under a new key" if res.new_key else "; same master key"))


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(synthesize_cmd)
    cli.add_command(export_cmd)
