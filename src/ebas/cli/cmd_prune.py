"""``ebas prune``."""

from __future__ import annotations

import click

from ebas.cli.app import get_env, json_option
from ebas.cli.cmd_retention import prune_options, run_prune
from ebas.cli.progressview import emit_summary


@click.command("prune")
@click.option("-n", "--dry-run", is_flag=True, help="only show what would be deleted and repacked")
@prune_options
@json_option
@click.pass_context
def prune_cmd(ctx, dry_run, max_unused, grace, max_wait, lock_wait):
    """Delete data no snapshot needs and repack mostly-unused packs.

    Safe while backups run: packs are deleted only after the index stops naming them and
    every backup that was running has finished (up to --max-wait; the next prune finishes
    the rest). One prune at a time.
    """
    env = get_env(ctx)
    repo = env.open_repo()
    res, text = run_prune(env, repo, max_unused=max_unused, grace=grace, max_wait=max_wait, lock_wait=lock_wait,
                          dry_run=dry_run)
    emit_summary(env, res.to_json(), text)


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(prune_cmd)
