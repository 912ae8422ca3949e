"""``ebas check``, ``ebas repair index``, ``ebas unlock`` and ``ebas object-lock extend``."""

from __future__ import annotations

import click

from ebas.cli.app import command, get_env, group
from ebas.cli.render import printable
from ebas.errors import EXIT_INTEGRITY


@command("check")
@click.option("--read-data", is_flag=True, help="also read every pack and verify every blob")
@click.pass_context
def check_cmd(ctx, read_data):
    """Verify the repository's structure (and with --read-data, all data)."""
    from ebas import api
    from ebas.cli.progressview import emit_summary, progress_view

    env = get_env(ctx)
    repo = env.open_repo()
    with progress_view(env) as progress:
        report = api.check(repo, read_data=read_data, progress=progress)
    lines = [f"{p.kind}: {printable(p.message)}" + (f"\n  hint: {printable(p.hint)}" if p.hint else "")
             for p in report.problems]
    lines.append("no errors were found" if report.ok else f"{len(report.errors)} error(s) found")
    emit_summary(env, report.to_json(), "\n".join(lines))
    if not report.ok:
        ctx.exit(EXIT_INTEGRITY)


@group("repair")
def repair_group():
    """Repair damaged repository structures."""


@repair_group.command("index")
@click.pass_context
def repair_index_cmd(ctx):
    """Rebuild the index (dedup table) from the packs.

    Reads every pack whole: intact packs are indexed; of the others (changed bytes, a copy
    under another pack's name) the blobs that still verify are kept in new packs, damaged
    blobs leave the index (the next backup stores that data again), and the pack is moved
    to quarantine/.
    """
    from ebas import api

    env = get_env(ctx)
    report = api.repair_index(env.open_repo())
    env.emit(report, report.summary())


@command("unlock")
@click.pass_context
def unlock_cmd(ctx):
    """Remove stale locks (never a live one)."""
    from ebas import api

    env = get_env(ctx)
    res = api.unlock(env.open_repo())
    text = "\n".join([f"removed stale {lk.describe(res.now_ns)}" for lk in res.removed]
                     + [f"kept live {line}" for line in res.live_lines]) or "no locks"
    env.emit(res, text)


@group("object-lock")
def object_lock_group():
    """Write-once retention (S3 Object Lock) maintenance."""


@object_lock_group.command("extend")
@click.option("-n", "--dry-run", is_flag=True, help="only report the packs whose retention is too short")
@click.pass_context
def object_lock_extend_cmd(ctx, dry_run):
    """Keep every pack retained as long as the newest snapshot that needs it (run after backups)."""
    from ebas import api

    env = get_env(ctx)
    res = api.extend_object_locks(env.open_repo(), dry_run=dry_run)
    env.emit(res, res.summary())


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(check_cmd)
    cli.add_command(repair_group)
    cli.add_command(unlock_cmd)
    cli.add_command(object_lock_group)
