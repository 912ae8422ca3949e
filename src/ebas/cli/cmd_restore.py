"""``ebas restore`` and ``ebas dump``."""

from __future__ import annotations

import sys

import click

from ebas.cli.app import get_env, json_option
from ebas.cli.render import human_size, printable_lines
from ebas.errors import EXIT_PARTIAL


def snapshot_filters(f):
    """``--host``, ``--tag`` and ``--path`` narrowing ``latest`` (as in restic)."""
    f = click.option("--path", "filter_path", help="only snapshots of this source path")(f)
    f = click.option("--tag", "filter_tags", multiple=True, help="only snapshots with this tag")(f)
    f = click.option("--host", "filter_host", help="only snapshots of this host")(f)
    return f


def find(repo, ref, filter_host, filter_tags, filter_path):
    """Resolve a snapshot reference with the filters."""
    return repo.find_snapshot(ref, host=filter_host, tags=list(filter_tags) or None, path=filter_path)


@click.command("restore")
@click.argument("snapshot")
@click.option("-t", "--target", required=True, type=click.Path(), help="directory to restore into")
@click.option("-i", "--include", "includes", multiple=True, metavar="PATH", help="restore only PATH (repeatable)")
@click.option("--no-owner", is_flag=True, help="do not restore file ownership")
@click.option("--staging", metavar="DIR", type=click.Path(),
              help="tape: recall the repository into a directory under DIR first (default: beside --target)")
@click.option("--skip-damaged", is_flag=True,
              help="restore every file that can be restored and list the ones that cannot (exit 3 if any)")
@snapshot_filters
@json_option
@click.pass_context
def restore_cmd(ctx, snapshot, target, includes, no_owner, staging, skip_damaged, filter_host, filter_tags,
                filter_path):
    """Restore SNAPSHOT (an id prefix or 'latest') into --target.

    From a tape repository, the repository is first recalled into a staging directory,
    reading the cartridges once each, in order; the restore reads that copy.

    With --skip-damaged, damaged data (a corrupt or missing blob or tree, an entry the
    tree check refuses) does not stop the restore: those files are skipped and listed
    (path and reason), everything else is restored, and the exit code is 3 (partial).
    """
    from ebas.backup.restorer import Restorer
    from ebas.cli.progressview import emit_summary, progress_view
    from ebas.transfer.recall import needs_recall, staged

    env = get_env(ctx)
    repo = env.open_repo()
    if needs_recall(repo):
        env.note(f"recalling the repository from {repo.store.url} (each cartridge once, in order)...")
    with staged(repo, staging, near=target) as (source, recalled):
        snap = find(source, snapshot, filter_host, filter_tags, filter_path)
        with progress_view(env) as progress:
            result = Restorer(source, snap, target, includes=list(includes),
                              restore_owner=False if no_owner else None, skip_damaged=skip_damaged,
                              progress=progress).run()
    for w in result.warnings:
        env.note(f"warning: {w}")
    for f in result.failed:  # errors: shown even with --quiet
        click.echo(printable_lines(f"not restored: {f['path']}: {f['reason']}"), err=True)
    out = result.to_json()
    out["snapshot_id"] = snap.id
    if recalled is not None:
        out["recalled"] = recalled.to_json()
    emit_summary(env, out, f"restored snapshot {snap.id[:8]} to {target}: {result.files} files, {result.dirs} dirs, "
                  f"{human_size(result.bytes)}"
                  + (f"; {len(result.failed)} damaged item(s) NOT restored (listed above)" if result.failed else ""))
    if result.failed:
        ctx.exit(EXIT_PARTIAL)


@click.command("dump")
@click.argument("snapshot")
@click.argument("path")
@snapshot_filters
@click.pass_context
def dump_cmd(ctx, snapshot, path, filter_host, filter_tags, filter_path):
    """Write PATH of SNAPSHOT to standard output (a directory as a tar stream)."""
    from ebas.backup.dump import dump

    env = get_env(ctx)
    repo = env.open_repo()
    snap = find(repo, snapshot, filter_host, filter_tags, filter_path)
    out = sys.stdout.buffer
    dump(repo, snap, path, out)
    out.flush()


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(restore_cmd)
    cli.add_command(dump_cmd)
