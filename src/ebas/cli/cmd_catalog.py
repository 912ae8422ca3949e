"""``ebas catalog sync|rebuild|check|stats|vacuum|export|import``, ``ebas find``, ``ebas history``
and ``ebas ls --at``.

Queries need only the repository location (to see which snapshots exist), not its
password; ``sync``, ``rebuild`` and ``find --same-content FILE`` open the repository.
"""

from __future__ import annotations

import os
import re
import sys

import click

from ebas.cli.app import command, get_env, group
from ebas.cli.render import human_size, local_time, mode_string, printable
from ebas.errors import EXIT_ERROR, UsageError


# ------------------------------------------------------------------ helpers
def _freshness_notes(env, fresh) -> None:
    if not fresh.checked:
        env.note("warning: no repository given, so this answer could not be checked for snapshots "
                 "the catalog has not indexed yet")
        return
    if fresh.not_indexed:
        ids = ", ".join(i[:8] for i in fresh.not_indexed[:10]) + (" ..." if len(fresh.not_indexed) > 10 else "")
        env.warn(f"warning: {len(fresh.not_indexed)} snapshot(s) are not indexed yet and were not searched: {ids}\n"
                 "  run 'ebas catalog sync'")
    if fresh.forgotten:
        env.warn(f"warning: {len(fresh.forgotten)} indexed snapshot(s) are gone from the repository; "
                 "run 'ebas catalog sync'")


def _hit_line(h, long_format: bool = True) -> str:
    span = f"{h.snapshot[:8]}" if h.snapshot_count == 1 else \
        f"{h.first_snapshot[:8]}..{h.last_snapshot[:8]} ({h.snapshot_count} snapshots)"
    path = printable(h.path) + (f" -> {printable(h.target)}" if h.target else "")
    size = human_size(h.size) if h.type == "file" else "-"
    line = f"{local_time(h.mtime_ns)}  {size:>10}  {printable(h.host):<12} {path}  [{span}]"
    if long_format:
        line = f"{mode_string(h.type, h.mode)} {printable(h.user) or h.uid:>8} " + line
    if h.deleted_in:
        line += f"  gone in {h.deleted_in[:8]} ({local_time(h.deleted_time_ns)})"
    return line


# ------------------------------------------------------------------- find
@command("find")
@click.argument("pattern", required=False)
@click.option("--exact", "mode", flag_value="exact", help="the whole name equals PATTERN")
@click.option("--regex", "mode", flag_value="regex", help="PATTERN is a regular expression")
@click.option("--glob", "mode", flag_value="glob", help="PATTERN is a glob (implied by * ? [)")
@click.option("--substring", "mode", flag_value="substring", help="names containing PATTERN (the default)")
@click.option("-i", "--ignore-case", is_flag=True, help="ignore upper/lower case")
@click.option("--under", metavar="DIR", help="only entries under this directory")
@click.option("--path", "old_under", metavar="DIR", hidden=True, help="deprecated name of --under")
@click.option("--size", metavar="SPEC", help="size filter: >100M, <4k, 1M..2G, 512")
@click.option("--newer", metavar="TIME", help="modified at or after TIME (ISO date, 7d, @epoch)")
@click.option("--older", metavar="TIME", help="modified before TIME")
@click.option("--owner", metavar="USER", help="owned by this user name or uid")
@click.option("--mode", "mode_filter", metavar="SPEC",
              help="world-writable, setuid, setgid, sticky, -OCTAL (bits set) or OCTAL (exact)")
@click.option("--type", "types", multiple=True, type=click.Choice(["f", "d", "l", "file", "dir", "symlink"]),
              help="entry type (repeatable)")
@click.option("--host", "hosts", multiple=True, help="only this host (repeatable: any of them)")
@click.option("--source", "sources", multiple=True, metavar="PATH", help="only sources backing up PATH (repeatable)")
@click.option("--tag", "tags", multiple=True, help="only versions held by a snapshot with this tag")
@click.option("--between", nargs=2, metavar="T1 T2", help="only versions held by a snapshot taken between T1 and T2")
@click.option("--deleted", is_flag=True, help="files that existed and then disappeared (and where)")
@click.option("--same-content", metavar="FILE|DIGEST", help="every place this content lives")
@click.option("--limit", type=int, default=1000, show_default=True, help="at most this many results (0: all)")
@click.option("--sort", metavar="KEY", help="path, name, size, mtime or time; '-' prefix for descending")
@click.pass_context
def find_cmd(ctx, pattern, mode, ignore_case, under, old_under, size, newer, older, owner, mode_filter, types, hosts,
             sources, tags, between, deleted, same_content, limit, sort):
    """Find file versions in every snapshot, from the catalog.

    PATTERN without wildcards matches names that contain it; with * ? [ it is a glob
    over the whole name. Every result names snapshots usable with 'ebas restore'.
    """
    from ebas import api

    env = get_env(ctx)
    if old_under is not None:
        env.warn("warning: 'ebas find --path' is deprecated, use --under (--path means a snapshot's source path "
                 "in the other commands)")
        if under is not None and under != old_under:
            raise UsageError("give --under once (--path is its deprecated name)")
        under = old_under
    repo = None
    if same_content and not re.fullmatch(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}", same_content) \
            and os.path.isfile(same_content):
        repo = env.open_repo()  # a local file's digest is keyed with the repository key
    res = api.find(pattern, match=mode or "auto", ignore_case=ignore_case, under=under, size=size, newer=newer,
                   older=older, owner=owner, mode=mode_filter, types=list(types), hosts=list(hosts),
                   sources=list(sources), tags=list(tags), between=tuple(between) if between else None,
                   deleted=deleted, same_content=same_content, limit=limit, sort=sort, **env.catalog_args(repo))
    _freshness_notes(env, res.freshness)
    text = "\n".join(_hit_line(h) for h in res.hits) or "no matches"
    if res.truncated:
        text += f"\n(only the first {limit} results; use --limit)"
    env.emit(res, text)


# ---------------------------------------------------------------- history
@command("history")
@click.argument("path")
@click.option("--host", "hosts", multiple=True, help="only this host (repeatable: any of them)")
@click.option("--source", "sources", multiple=True, metavar="PATH", help="only sources backing up PATH (repeatable)")
@click.pass_context
def history_cmd(ctx, path, hosts, sources):
    """Every version of PATH, with its size, mtime and the snapshots that hold it."""
    from ebas import api

    env = get_env(ctx)
    res = api.history(path, hosts=list(hosts), sources=list(sources), **env.catalog_args())
    _freshness_notes(env, res.freshness)
    lines = []
    for h in res.versions:
        lines.append(f"{local_time(h.mtime_ns)}  {human_size(h.size) if h.type == 'file' else h.type:>10}  "
                     f"{(h.digest or '')[:12]:12}  {printable(h.host):<12} in {h.snapshot_count} snapshot(s): "
                     + " ".join(s[:8] for s in (h.snapshots or [])[:8]) + (" ..." if h.snapshot_count > 8 else ""))
    env.emit(res, "\n".join(lines) if lines else f"{printable(path)}: not in any indexed snapshot")


# ------------------------------------------------------------------ ls --at
def ls_at(ctx, at_time: str | None, path: str, long_format: bool, recursive: bool, hosts, tags, source, *,
          snapshot: str | None = None) -> None:
    """``ebas ls --at TIME PATH`` (each source's snapshot at that time) or ``ebas ls
    --from-catalog SNAPSHOT PATH``: a directory as it was, from the catalog alone."""
    from ebas import api

    env = get_env(ctx)
    res = api.catalog_ls(path, at=at_time if snapshot is None else None, snapshot=snapshot, recursive=recursive,
                         hosts=[hosts] if isinstance(hosts, str) else list(hosts or ()),
                         sources=[source] if source else (), tags=list(tags or ()), **env.catalog_args())
    _freshness_notes(env, res.freshness)
    if env.json:
        env.emit(res)
        return
    if not res.listings:
        where = f"snapshot {snapshot}" if snapshot is not None else f"any indexed snapshot at {at_time}"
        raise UsageError(f"{path!r} is not in {where}")
    out = []
    for x in res.listings:
        if len(res.listings) > 1:
            out.append(f"# snapshot {x.snapshot.snap_id[:8]} {printable(x.snapshot.host)} "
                       f"{printable(' '.join(x.snapshot.paths))} "
                       f"{local_time(x.snapshot.time_ns)}")
        for e in x.entries:
            if long_format:
                out.append(f"{mode_string(e.type, e.mode)} {printable(e.user) or e.uid:>8} "
                           f"{printable(e.group) or e.gid:>8} {e.size:>12} {local_time(e.mtime_ns)} "
                           f"{printable(e.path)}" + (f" -> {printable(e.target)}" if e.target else ""))
            else:
                out.append(printable(e.path))
    click.echo("\n".join(out))


# ---------------------------------------------------------------- catalog
@group("catalog")
def catalog_group():
    """Maintain the catalog: the index of every file version in every snapshot."""


@catalog_group.command("sync")
@click.pass_context
def sync_cmd(ctx):
    """Index snapshots the catalog lacks; drop the ones the repository no longer has."""
    from ebas import api

    env = get_env(ctx)
    args = env.catalog_args(env.open_repo())
    from ebas.cli.progressview import emit_summary, progress_view

    with progress_view(env) as progress:
        res = api.catalog_sync(args.pop("repo"), catalog=args["catalog"], site=args["site"], progress=progress)
    for p in res.unreadable:
        env.note(f"warning: unreadable snapshot {p}")
    for p in res.skipped:
        env.note(f"warning: {p}")
    emit_summary(env, res, f"indexed {len(res.added)} snapshot(s), removed {len(res.removed)}, "
                  f"read {res.trees_read} trees, {res.rows_inserted} new file versions in {res.seconds:.2f}s")


@catalog_group.command("rebuild")
@click.pass_context
def rebuild_cmd(ctx):
    """Recreate the catalog from the repository (also repairs a damaged catalog)."""
    from ebas import api

    env = get_env(ctx)
    args = env.catalog_args(env.open_repo())
    from ebas.cli.progressview import emit_summary, progress_view

    with progress_view(env) as progress:
        res = api.catalog_rebuild(args.pop("repo"), catalog=args["catalog"], site=args["site"], progress=progress)
    for p in res.skipped:
        env.note(f"warning: {p}")
    emit_summary(env, res, f"rebuilt the catalog: {len(res.added)} snapshot(s), {res.rows_inserted} file versions "
                  f"in {res.seconds:.2f}s")


@catalog_group.command("check")
@click.option("--integrity", is_flag=True, help="also run the database's own consistency check")
@click.pass_context
def check_cmd(ctx, integrity):
    """Report snapshots missing from or extra in the catalog (exit 1 if any)."""
    from ebas import api

    env = get_env(ctx)
    res = api.catalog_check(integrity=integrity, **env.catalog_args())
    lines = [f"indexed: {res.indexed} snapshot(s); in the repository: {res.in_repository}"]
    lines += [f"missing (not indexed): {s}" for s in res.missing]
    lines += [f"extra (gone from the repository): {s}" for s in res.extra]
    lines += [f"problem: {p}" for p in res.problems]
    if res.foreign:
        lines.append(f"{len(res.foreign)} snapshot(s) indexed from other sites only")
    lines.append("ok" if res.ok else "run 'ebas catalog sync' (or 'ebas catalog rebuild' if it is damaged)")
    env.emit(res, "\n".join(lines))
    if not res.ok:
        ctx.exit(EXIT_ERROR)


@catalog_group.command("stats")
@click.pass_context
def stats_cmd(ctx):
    """Counts and size of the catalog."""
    from ebas import api

    env = get_env(ctx)
    st = api.catalog_stats(**env.catalog_args()).figures
    text = "\n".join(f"{k + ':':<20}{human_size(v) if k == 'size_bytes' else v}" for k, v in st.items())
    env.emit(st, text)


@catalog_group.command("vacuum")
@click.pass_context
def vacuum_cmd(ctx):
    """Drop unused dictionary entries and compact the database."""
    from ebas import api

    env = get_env(ctx)
    res = api.catalog_vacuum(**env.catalog_args()).figures
    env.emit(res, f"catalog compacted from {human_size(res['size_before'])} to {human_size(res['size_after'])}")


@catalog_group.command("export")
@click.option("--since", "since", type=int, default=0, show_default=True, metavar="MARK",
              help="only what changed after this mark (printed by the previous export)")
@click.option("-o", "--output", default="-", metavar="FILE", help="write here ('-': standard output)")
@click.pass_context
def export_cmd(ctx, since, output):
    """Export catalog entries snapshot by snapshot (with tombstones) for another site."""
    from ebas import api

    env = get_env(ctx)
    st = api.catalog_export(sys.stdout.buffer if output == "-" else output, since=since, **env.catalog_args())
    msg = (f"exported {st.snapshots} snapshot(s), {st.tombstones} tombstone(s), {st.trees} trees; "
           f"next time use --since {st.mark}")
    if output == "-":
        sys.stdout.buffer.flush()
        env.note(msg)
    else:
        env.emit(st, msg)


@catalog_group.command("import")
@click.argument("file")
@click.pass_context
def import_cmd(ctx, file):
    """Import an export file from another site (importing twice changes nothing)."""
    from ebas import api

    env = get_env(ctx)
    st = api.catalog_import(sys.stdin.buffer if file == "-" else file, **env.catalog_args())
    env.emit(st, f"imported {st.snapshots_added} snapshot(s), {st.sites_added} site record(s), "
                 f"{st.tombstones_added} tombstone(s); removed {st.snapshots_removed}; "
                 f"{st.unchanged} already known")


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    for c in (catalog_group, find_cmd, history_cmd):
        cli.add_command(c)
