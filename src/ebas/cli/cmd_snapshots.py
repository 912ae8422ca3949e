"""``ebas snapshots``, ``ls``, ``diff`` and ``stats``."""

from __future__ import annotations

import click

from ebas.cli.app import get_env, json_option
from ebas.cli.cmd_restore import find, snapshot_filters
from ebas.cli.render import human_size, local_time, mode_string, printable, table


@click.command("snapshots")
@click.option("--host", help="only snapshots of this host")
@click.option("--tag", "tags", multiple=True, help="only snapshots with this tag")
@click.option("--path", help="only snapshots of this source path")
@click.option("--chains", is_flag=True, help="group by backup chain (full -> differentials / incrementals)")
@json_option
@click.pass_context
def snapshots_cmd(ctx, host, tags, path, chains):
    """List snapshots, oldest first."""
    from ebas.repo.snapshots import filter_snapshots

    env = get_env(ctx)
    repo = env.open_repo()
    snaps = filter_snapshots(repo.snapshots(), host=host, tags=list(tags) or None, path=path)
    for p in repo.snapshot_problems:
        env.note(f"warning: unreadable snapshot {p}")
    if chains:
        from ebas.cli.cmd_chains import show_chains

        return show_chains(env, snaps)
    rows = [[s.id[:8], local_time(s.time_ns), s.host, s.level, ",".join(s.tags), " ".join(s.paths),
             human_size(s.stats.get("bytes_logical", 0)) + (" PARTIAL" if s.partial else "")] for s in snaps]
    env.emit([s.to_json() for s in snaps],
             table(["ID", "Time", "Host", "Level", "Tags", "Paths", "Size"], rows) + f"\n{len(snaps)} snapshots")


@click.command("ls")
@click.argument("snapshot", required=False)
@click.argument("path", default="/")
@click.option("-l", "--long", "long_format", is_flag=True, help="show mode, owner, size and time")
@click.option("-R", "--recursive", is_flag=True, help="list subdirectories too")
@click.option("--at", "at_time", metavar="TIME",
              help="list PATH as it was at TIME (2026-04-01T12:00, yesterday, 7d; docs/units.md), from the catalog "
                   "(give only PATH)")
@click.option("--from-catalog", is_flag=True,
              help="answer from the catalog alone: no password, no repository reads (the snapshot must be indexed)")
@snapshot_filters
@json_option
@click.pass_context
def ls_cmd(ctx, snapshot, path, long_format, recursive, at_time, from_catalog, filter_host, filter_tags, filter_path):
    """List the entries at PATH in SNAPSHOT (or, with --at TIME, at that time from the catalog)."""
    from ebas.backup.browse import list_path

    if at_time is not None or from_catalog:
        from ebas.cli.cmd_catalog import ls_at

        if at_time is None and snapshot is None:
            raise click.UsageError("missing argument SNAPSHOT (or use --at TIME PATH)")
        return ls_at(ctx, at_time, snapshot if at_time is not None and snapshot and path == "/" else path,
                     long_format, recursive, filter_host, filter_tags, filter_path,
                     snapshot=snapshot if at_time is None else None)
    if snapshot is None:
        raise click.UsageError("missing argument SNAPSHOT (or use --at TIME PATH)")
    env = get_env(ctx)
    repo = env.open_repo()
    snap = find(repo, snapshot, filter_host, filter_tags, filter_path)
    entries = list(list_path(repo, snap, path, recursive))
    if env.json:
        env.emit([{"path": p, "type": n.type, "size": n.size, "mode": n.mode, "uid": n.uid, "gid": n.gid,
                   "user": n.user, "group": n.group, "mtime_ns": n.mtime_ns,
                   "target": n.target.decode("utf-8", "surrogateescape") if n.target else None}
                  for p, n in entries])
        return
    lines = []
    for p, n in entries:
        if long_format:
            lines.append(f"{mode_string(n.type, n.mode)} {printable(n.user) or n.uid:>8} "
                         f"{printable(n.group) or n.gid:>8} {n.size:>12} {local_time(n.mtime_ns)} {printable(p)}"
                         + (f" -> {printable(n.target.decode('utf-8', 'surrogateescape'))}" if n.target else ""))
        else:
            lines.append(printable(p))
    click.echo("\n".join(lines))


@click.command("diff")
@click.argument("snapshot_a")
@click.argument("snapshot_b")
@json_option
@click.pass_context
def diff_cmd(ctx, snapshot_a, snapshot_b):
    """Show what changed from SNAPSHOT_A to SNAPSHOT_B."""
    from ebas.backup.browse import diff_snapshots

    env = get_env(ctx)
    repo = env.open_repo()
    a, b = repo.find_snapshot(snapshot_a), repo.find_snapshot(snapshot_b)
    changes = diff_snapshots(repo, a, b)
    counts = {k: sum(1 for c in changes if c.kind == k) for k in ("added", "removed", "modified", "metadata", "type")}
    added = sum(c.new_size for c in changes if c.kind == "added")
    removed = sum(c.old_size for c in changes if c.kind == "removed")
    sign = {"added": "+", "removed": "-", "modified": "M", "metadata": "U", "type": "T"}
    text = "\n".join(f"{sign[c.kind]}    {printable(c.path)}" for c in changes)
    text += (f"\n\nadded: {counts['added']} ({human_size(added)}), removed: {counts['removed']} "
             f"({human_size(removed)}), modified: {counts['modified']}, metadata only: {counts['metadata']}")
    env.emit({"from": a.id, "to": b.id, "changes": [c.to_json() for c in changes], "summary": counts,
              "added_bytes": added, "removed_bytes": removed}, text)


@click.command("stats")
@click.option("--no-reclaimable", is_flag=True, help="skip the walk of every tree that measures reclaimable space")
@json_option
@click.pass_context
def stats_cmd(ctx, no_reclaimable):
    """Logical vs stored size, reduction, chunk and pack counts, space a prune would free."""
    from ebas.api import repository_stats

    env = get_env(ctx)
    repo = env.open_repo()
    st = repository_stats(repo, reclaimable=not no_reclaimable)
    text = (f"snapshots:          {st['snapshots']}\n"
            f"logical size:       {human_size(st['logical_bytes'])}\n"
            f"stored size:        {human_size(st['stored_bytes'])}\n"
            f"reduction:          {st['reduction'] * 100:.2f}%\n"
            f"blobs (chunks):     {st['blobs']}\n"
            f"packs:              {st['packs']}\n"
            f"dedup table memory: {human_size(st['dedup_table_bytes'])} "
            f"({st['dedup_bytes_per_blob']} bytes per blob)")
    if "reclaimable_error" in st:
        text += f"\nreclaimable:        unknown ({st['reclaimable_error']})"
    if "reclaimable_bytes" in st:
        text += (f"\nunused in packs:    {human_size(st['unused_bytes'])}\n"
                 f"reclaimable:        {human_size(st['reclaimable_bytes'])} (prune: {st['packs_delete']} pack(s) "
                 f"to delete, {st['packs_repack']} to repack)")
    env.emit(st, text)


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    for c in (snapshots_cmd, ls_cmd, diff_cmd, stats_cmd):
        cli.add_command(c)
