"""``ebas prune``."""

from __future__ import annotations

import click

from ebas.cli.app import command, get_env
from ebas.cli.cmd_retention import prune_options, prune_options_value, prune_text


@command("prune")
@click.option("-n", "--dry-run", is_flag=True, help="only show what would be deleted and repacked")
@prune_options
@click.pass_context
def prune_cmd(ctx, dry_run, max_unused, grace, max_wait, lock_wait):
    """Delete data no snapshot needs and repack mostly-unused packs.

    Safe while backups run: packs are deleted only after the index stops naming them and
    every backup that was running has finished (up to --max-wait; the next prune finishes
    the rest). One prune at a time.
    """
    from ebas import api
    from ebas.cli.progressview import emit_summary, progress_view

    env = get_env(ctx)
    o = prune_options_value(max_unused=max_unused, grace=grace, max_wait=max_wait, lock_wait=lock_wait)
    repo = env.open_repo()
    with progress_view(env) as progress:
        res = api.prune(repo, max_unused=o.max_unused, grace=o.grace, max_wait=o.max_wait,
                        lock_wait=o.lock_wait, dry_run=dry_run, progress=progress)
    emit_summary(env, res.to_json(), prune_text(env, res, dry_run=dry_run))


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(prune_cmd)
