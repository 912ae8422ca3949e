"""``ebas check``, ``ebas repair index``, ``ebas unlock`` and ``ebas object-lock extend``."""

from __future__ import annotations

import click

from ebas.cli.app import get_env, json_option
from ebas.cli.render import printable
from ebas.errors import EXIT_INTEGRITY


@click.command("check")
@click.option("--read-data", is_flag=True, help="also read every pack and verify every blob")
@json_option
@click.pass_context
def check_cmd(ctx, read_data):
    """Verify the repository's structure (and with --read-data, all data)."""
    from ebas.cli.progressview import emit_summary, progress_view
    from ebas.verify.check import check_repository

    env = get_env(ctx)
    repo = env.open_repo()
    with progress_view(env) as progress:
        report = check_repository(repo, read_data=read_data, progress=progress)
    lines = [f"{p.kind}: {printable(p.message)}" + (f"\n  hint: {printable(p.hint)}" if p.hint else "")
             for p in report.problems]
    lines.append("no errors were found" if report.ok else f"{len(report.errors)} error(s) found")
    emit_summary(env, report.to_json(), "\n".join(lines))
    if not report.ok:
        ctx.exit(EXIT_INTEGRITY)


@click.group("repair")
def repair_group():
    """Repair damaged repository structures."""


@repair_group.command("index")
@json_option
@click.pass_context
def repair_index_cmd(ctx):
    """Rebuild the index (dedup table) from the packs.

    Reads every pack whole: intact packs are indexed; of the others (changed bytes, a copy
    under another pack's name) the blobs that still verify are kept in new packs, damaged
    blobs leave the index (the next backup stores that data again), and the pack is moved
    to quarantine/.
    """
    from ebas.verify.repair import rebuild_index

    env = get_env(ctx)
    repo = env.open_repo()
    report = rebuild_index(repo)
    env.emit(report.to_json(), report.summary())


@click.command("unlock")
@json_option
@click.pass_context
def unlock_cmd(ctx):
    """Remove stale locks (never a live one)."""
    env = get_env(ctx)
    repo = env.open_repo()
    mgr = repo.locks(heartbeat=None)
    removed = mgr.remove_stale()
    live = [lk for lk in mgr.list()]
    now = repo.clock.now_ns()
    text = "\n".join([f"removed stale {lk.describe(now)}" for lk in removed]
                     + [f"kept live {mgr.describe(lk)}" for lk in live]) or "no locks"
    env.emit({"removed": [lk.__dict__ for lk in removed], "live": [lk.__dict__ for lk in live]}, text)


@click.group("object-lock")
def object_lock_group():
    """Write-once retention (S3 Object Lock) maintenance."""


@object_lock_group.command("extend")
@click.option("--dry-run", is_flag=True, help="only report the packs whose retention is too short")
@json_option
@click.pass_context
def object_lock_extend_cmd(ctx, dry_run):
    """Keep every pack retained as long as the newest snapshot that needs it (run after backups)."""
    from ebas.lifecycle.objectlock import extend_locks

    env = get_env(ctx)
    repo = env.open_repo()
    res = extend_locks(repo, dry_run=dry_run)
    env.emit(res.to_json(), res.summary())


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(check_cmd)
    cli.add_command(repair_group)
    cli.add_command(unlock_cmd)
    cli.add_command(object_lock_group)
