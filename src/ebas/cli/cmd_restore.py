"""``ebas restore`` and ``ebas dump``."""

from __future__ import annotations

import sys

import click

from ebas.cli.app import command, get_env
from ebas.cli.render import human_size, printable_lines
from ebas.errors import EXIT_PARTIAL


def snapshot_filters(f):
    """``--host`` (repeatable), ``--tag`` and ``--path`` narrowing ``latest`` (as in restic)."""
    f = click.option("--path", "filter_path", help="only snapshots of this source path")(f)
    f = click.option("--tag", "filter_tags", multiple=True, help="only snapshots with this tag (repeatable: all of them)")(f)
    f = click.option("--host", "filter_host", multiple=True, help="only snapshots of this host (repeatable: any of them)")(f)
    return f


@command("restore")
@click.argument("snapshot")
@click.option("-t", "--target", required=True, type=click.Path(), help="directory to restore into")
@click.option("-i", "--include", "includes", multiple=True, metavar="PATH", help="restore only PATH (repeatable)")
@click.option("--no-owner", is_flag=True, help="do not restore file ownership")
@click.option("--staging", metavar="DIR", type=click.Path(),
              help="tape: recall the repository into a directory under DIR first (default: beside --target)")
@click.option("--skip-damaged", is_flag=True,
              help="restore every file that can be restored and list the ones that cannot (exit 3 if any)")
@snapshot_filters
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
    from ebas import api
    from ebas.cli.progressview import emit_summary, progress_view

    env = get_env(ctx)
    repo = env.open_repo()
    with progress_view(env) as progress:
        result = api.restore(repo, snapshot, target, includes=list(includes), host=list(filter_host) or None,
                             tags=list(filter_tags) or None, path=filter_path,
                             restore_owner=False if no_owner else None, staging=staging, notify=env.note,
                             skip_damaged=skip_damaged, progress=progress)
    for w in result.warnings:
        env.note(f"warning: {w}")
    for f in result.failed:  # errors: shown even with --quiet
        click.echo(printable_lines(f"not restored: {f['path']}: {f['reason']}"), err=True)
    emit_summary(env, result.to_json(), f"restored snapshot {result.snapshot_id[:8]} to {target}: {result.files} files, "
                 f"{result.dirs} dirs, {human_size(result.bytes)}"
                 + (f"; {len(result.failed)} damaged item(s) NOT restored (listed above)" if result.failed else ""))
    if result.failed:
        ctx.exit(EXIT_PARTIAL)


@command("dump")
@click.argument("snapshot")
@click.argument("path")
@snapshot_filters
@click.pass_context
def dump_cmd(ctx, snapshot, path, filter_host, filter_tags, filter_path):
    """Write PATH of SNAPSHOT to standard output (a directory as a tar stream)."""
    from ebas import api

    env = get_env(ctx)
    repo = env.open_repo()
    out = sys.stdout.buffer
    api.dump(repo, snapshot, path, out, host=list(filter_host) or None, tags=list(filter_tags) or None,
             source=filter_path)
    out.flush()


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(restore_cmd)
    cli.add_command(dump_cmd)
