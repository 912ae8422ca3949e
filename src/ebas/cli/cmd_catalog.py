"""``ebas catalog sync|rebuild|check|stats|vacuum|export|import``, ``ebas find``, ``ebas history``,
``ebas ls --at`` and the catalog update after ``ebas backup``.

Queries need only the repository location (to see which snapshots exist), not its
password; ``sync``, ``rebuild`` and ``find --same-content FILE`` open the repository.
"""

from __future__ import annotations

import os
import re
import sys

import click

from ebas.cli.app import get_env, json_option
from ebas.cli.render import human_size, local_time, mode_string, printable
from ebas.errors import EXIT_ERROR, UsageError

DISABLED = ("none", "off")


# ------------------------------------------------------------------ helpers
def _location(env) -> str | None:
    loc = env.catalog or os.environ.get("EBAS_CATALOG") or None
    return None if loc in DISABLED else loc


def open_env_catalog(env, repo=None):
    """The catalog of this invocation's repository, with freshness checks against its store."""
    from ebas.catalog import list_snapshot_ids, open_catalog

    site = os.environ.get("EBAS_SITE") or None
    store = repo.store if repo is not None else None
    if store is None:
        try:
            url = env.url()
        except UsageError:
            if _location(env) is None:
                raise
            return open_catalog(_location(env), site=site)  # no repository: answers say freshness is unknown
        from ebas.storage.registry import open_store

        store = open_store(url)
    from ebas.repo.repository import Repository

    repo_id = repo.config.repo_id if repo is not None else Repository.read_config(store).repo_id
    return open_catalog(_location(env), repo_id=repo_id, site=site, snapshot_ids=lambda: list_snapshot_ids(store))


def index_new_snapshot(env, repo, snapshot) -> None:
    """After a backup: index the new snapshot. Never fails the backup; a failure is reported
    and the next ``ebas catalog sync`` catches up."""
    if (env.catalog or os.environ.get("EBAS_CATALOG") or "") in DISABLED:
        return
    try:
        with open_env_catalog(env, repo) as cat:
            for p in cat.ingest_snapshot(repo, snapshot).skipped:
                env.note(f"warning: catalog: {p}")
    except Exception as exc:  # noqa: BLE001 - the backup is committed; the catalog is derived data
        msg = exc.render() if hasattr(exc, "render") else f"{type(exc).__name__}: {exc}"
        click.echo(f"warning: the catalog was not updated: {msg}\n  the backup is complete; "
                   "'ebas catalog sync' will index it later", err=True)


def unindex_snapshots(env, repo, snap_ids: list[str]) -> None:
    """After a forget: drop the removed snapshots from the catalog. Never fails the forget;
    a failure is reported and the next ``ebas catalog sync`` catches up."""
    if not snap_ids or (env.catalog or os.environ.get("EBAS_CATALOG") or "") in DISABLED:
        return
    try:
        with open_env_catalog(env, repo) as cat:
            for sid in snap_ids:
                cat.forget(sid)
    except Exception as exc:  # noqa: BLE001 - the forget is done; the catalog is derived data
        msg = exc.render() if hasattr(exc, "render") else f"{type(exc).__name__}: {exc}"
        click.echo(f"warning: the catalog was not updated: {msg}\n  the snapshots are removed; "
                   "'ebas catalog sync' will catch up", err=True)


def _freshness_notes(env, fresh) -> None:
    if not fresh.checked:
        env.note("warning: no repository given, so this answer could not be checked for snapshots "
                 "the catalog has not indexed yet")
        return
    if fresh.not_indexed:
        ids = ", ".join(i[:8] for i in fresh.not_indexed[:10]) + (" ..." if len(fresh.not_indexed) > 10 else "")
        click.echo(f"warning: {len(fresh.not_indexed)} snapshot(s) are not indexed yet and were not searched: {ids}\n"
                   "  run 'ebas catalog sync'", err=True)
    if fresh.forgotten:
        click.echo(f"warning: {len(fresh.forgotten)} indexed snapshot(s) are gone from the repository; "
                   "run 'ebas catalog sync'", err=True)


def _parse_time(text: str) -> int:
    """A TIME of the one grammar (docs/units.md) as ns since the epoch, as the catalog stores it."""
    from ebas.units import epoch_ns, parse_time

    return epoch_ns(parse_time(text))


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
@click.command("find")
@click.argument("pattern", required=False)
@click.option("--exact", "mode", flag_value="exact", help="the whole name equals PATTERN")
@click.option("--regex", "mode", flag_value="regex", help="PATTERN is a regular expression")
@click.option("--glob", "mode", flag_value="glob", help="PATTERN is a glob (implied by * ? [)")
@click.option("--substring", "mode", flag_value="substring", help="names containing PATTERN (the default)")
@click.option("-i", "--ignore-case", is_flag=True, help="ignore upper/lower case")
@click.option("--path", "path_prefix", metavar="PREFIX", help="only entries under this directory")
@click.option("--size", metavar="SPEC", help="size filter: >100M, <4KiB, 1M..2G, 512 (sizes: docs/units.md)")
@click.option("--newer", metavar="TIME", help="modified at or after TIME (ISO date, 7d, 15min, @epoch; docs/units.md)")
@click.option("--older", metavar="TIME", help="modified before TIME")
@click.option("--owner", metavar="USER", help="owned by this user name or uid")
@click.option("--mode", "mode_filter", metavar="SPEC",
              help="world-writable, setuid, setgid, sticky, -OCTAL (bits set) or OCTAL (exact)")
@click.option("--type", "types", multiple=True, type=click.Choice(["f", "d", "l", "file", "dir", "symlink"]),
              help="entry type (repeatable)")
@click.option("--host", "hosts", multiple=True, help="only this host (repeatable)")
@click.option("--source", "sources", multiple=True, metavar="PATH", help="only sources backing up PATH (repeatable)")
@click.option("--tag", "tags", multiple=True, help="only versions held by a snapshot with this tag")
@click.option("--between", nargs=2, metavar="T1 T2", help="only versions held by a snapshot taken between T1 and T2")
@click.option("--deleted", is_flag=True, help="files that existed and then disappeared (and where)")
@click.option("--same-content", metavar="FILE|DIGEST", help="every place this content lives")
@click.option("--limit", type=int, default=1000, show_default=True, help="at most this many results (0: all)")
@click.option("--sort", metavar="KEY", help="path, name, size, mtime or time; '-' prefix for descending")
@json_option
@click.pass_context
def find_cmd(ctx, pattern, mode, ignore_case, path_prefix, size, newer, older, owner, mode_filter, types, hosts,
             sources, tags, between, deleted, same_content, limit, sort):
    """Find file versions in every snapshot, from the catalog.

    PATTERN without wildcards matches names that contain it; with * ? [ it is a glob
    over the whole name. Every result names snapshots usable with 'ebas restore'.
    """
    from ebas.catalog import FindQuery
    from ebas.catalog.specs import parse_size_filter

    env = get_env(ctx)
    if mode and pattern is None:
        raise UsageError(f"--{mode} needs a PATTERN")
    q = FindQuery(pattern=pattern, match=mode or "auto", ignore_case=ignore_case, path=path_prefix,
                  owner=owner, mode=mode_filter, types=list(types), hosts=list(hosts), sources=list(sources),
                  tags=list(tags), deleted=deleted, limit=limit or None, sort=sort)
    if size:
        q.min_size, q.max_size = parse_size_filter(size)
    if newer:
        q.newer = _parse_time(newer)
    if older:
        q.older = _parse_time(older)
    if between:
        q.between = (_parse_time(between[0]), _parse_time(between[1]))
    repo = None
    if same_content:
        q.digest, repo = _digests(env, same_content)
    with open_env_catalog(env, repo) as cat:
        if same_content and q.digest is None:
            digests = [bytes.fromhex(h.digest) for h in cat.history(same_content).versions if h.digest]
            if not digests:
                raise UsageError(f"{same_content!r} is neither a local file, a digest, nor a file in the catalog")
            q.digest = digests
        res = cat.find(q)
    _freshness_notes(env, res.freshness)
    text = "\n".join(_hit_line(h) for h in res.hits) or "no matches"
    if res.truncated:
        text += f"\n(only the first {limit} results; use --limit)"
    env.emit(res.to_json(), text)


def _digests(env, spec: str):
    """``(digest or None, repo or None)`` for --same-content."""
    if re.fullmatch(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}", spec):
        return bytes.fromhex(spec)[:16], None
    if os.path.isfile(spec):
        from ebas.catalog import file_digest

        repo = env.open_repo()
        return file_digest(repo, spec), repo
    return None, None


# ---------------------------------------------------------------- history
@click.command("history")
@click.argument("path")
@click.option("--host", "hosts", multiple=True, help="only this host (repeatable)")
@click.option("--source", "sources", multiple=True, metavar="PATH", help="only sources backing up PATH")
@json_option
@click.pass_context
def history_cmd(ctx, path, hosts, sources):
    """Every version of PATH, with its size, mtime and the snapshots that hold it."""
    env = get_env(ctx)
    with open_env_catalog(env) as cat:
        res = cat.history(path, hosts=list(hosts), sources=list(sources))
    _freshness_notes(env, res.freshness)
    lines = []
    for h in res.versions:
        lines.append(f"{local_time(h.mtime_ns)}  {human_size(h.size) if h.type == 'file' else h.type:>10}  "
                     f"{(h.digest or '')[:12]:12}  {printable(h.host):<12} in {h.snapshot_count} snapshot(s): "
                     + " ".join(s[:8] for s in (h.snapshots or [])[:8]) + (" ..." if h.snapshot_count > 8 else ""))
    env.emit(res.to_json(), "\n".join(lines) if lines else f"{printable(path)}: not in any indexed snapshot")


# ------------------------------------------------------------------ ls --at
def ls_at(ctx, at_time: str | None, path: str, long_format: bool, recursive: bool, hosts, tags, source, *,
          snapshot: str | None = None) -> None:
    """``ebas ls --at TIME PATH`` (each source's snapshot at that time) or ``ebas ls
    --from-catalog SNAPSHOT PATH``: a directory as it was, from the catalog alone."""
    env = get_env(ctx)
    with open_env_catalog(env) as cat:
        if snapshot is not None:
            res = cat.ls(path, snapshot=snapshot, recursive=recursive)
        else:
            res = cat.ls(path, at=_parse_time(at_time), hosts=[hosts] if isinstance(hosts, str) else list(hosts or ()),
                         sources=[source] if source else None, tags=list(tags or ()), recursive=recursive)
    _freshness_notes(env, res.freshness)
    if env.json:
        env.emit(res.to_json())
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
@click.group("catalog")
def catalog_group():
    """Maintain the catalog: the index of every file version in every snapshot."""


@catalog_group.command("sync")
@json_option
@click.pass_context
def sync_cmd(ctx):
    """Index snapshots the catalog lacks; drop the ones the repository no longer has."""
    env = get_env(ctx)
    repo = env.open_repo()
    from ebas.cli.progressview import emit_summary, progress_view

    with open_env_catalog(env, repo) as cat, progress_view(env) as progress:
        res = cat.sync(repo, progress=progress)
    for p in res.unreadable:
        env.note(f"warning: unreadable snapshot {p}")
    for p in res.skipped:
        env.note(f"warning: {p}")
    emit_summary(env, res.to_json(), f"indexed {len(res.added)} snapshot(s), removed {len(res.removed)}, "
                            f"read {res.trees_read} trees, {res.rows_inserted} new file versions in {res.seconds:.2f}s")


@catalog_group.command("rebuild")
@json_option
@click.pass_context
def rebuild_cmd(ctx):
    """Recreate the catalog from the repository (also repairs a damaged catalog)."""
    from ebas.catalog import rebuild_catalog

    env = get_env(ctx)
    repo = env.open_repo()
    from ebas.cli.progressview import emit_summary, progress_view

    with progress_view(env) as progress:
        cat, res = rebuild_catalog(_location(env), repo, site=os.environ.get("EBAS_SITE") or None, progress=progress)
    cat.close()
    for p in res.skipped:
        env.note(f"warning: {p}")
    emit_summary(env, res.to_json(), f"rebuilt the catalog: {len(res.added)} snapshot(s), {res.rows_inserted} file versions "
                            f"in {res.seconds:.2f}s")


@catalog_group.command("check")
@click.option("--integrity", is_flag=True, help="also run the database's own consistency check")
@json_option
@click.pass_context
def check_cmd(ctx, integrity):
    """Report snapshots missing from or extra in the catalog (exit 1 if any)."""
    env = get_env(ctx)
    with open_env_catalog(env) as cat:
        res = cat.check(integrity=integrity)
    lines = [f"indexed: {res.indexed} snapshot(s); in the repository: {res.in_repository}"]
    lines += [f"missing (not indexed): {s}" for s in res.missing]
    lines += [f"extra (gone from the repository): {s}" for s in res.extra]
    lines += [f"problem: {p}" for p in res.problems]
    if res.foreign:
        lines.append(f"{len(res.foreign)} snapshot(s) indexed from other sites only")
    lines.append("ok" if res.ok else "run 'ebas catalog sync' (or 'ebas catalog rebuild' if it is damaged)")
    env.emit(res.to_json(), "\n".join(lines))
    if not res.ok:
        ctx.exit(EXIT_ERROR)


@catalog_group.command("stats")
@json_option
@click.pass_context
def stats_cmd(ctx):
    """Counts and size of the catalog."""
    env = get_env(ctx)
    with open_env_catalog(env) as cat:
        st = cat.stats()
    text = "\n".join(f"{k + ':':<20}{human_size(v) if k == 'size_bytes' else v}" for k, v in st.items())
    env.emit(st, text)


@catalog_group.command("vacuum")
@json_option
@click.pass_context
def vacuum_cmd(ctx):
    """Drop unused dictionary entries and compact the database."""
    env = get_env(ctx)
    with open_env_catalog(env) as cat:
        res = cat.vacuum()
    env.emit(res, f"catalog compacted from {human_size(res['size_before'])} to {human_size(res['size_after'])}")


@catalog_group.command("export")
@click.option("--since", "since", type=int, default=0, show_default=True, metavar="MARK",
              help="only what changed after this mark (printed by the previous export)")
@click.option("-o", "--output", default="-", metavar="FILE", help="write here ('-': standard output)")
@json_option
@click.pass_context
def export_cmd(ctx, since, output):
    """Export catalog entries snapshot by snapshot (with tombstones) for another site."""
    env = get_env(ctx)
    with open_env_catalog(env) as cat:
        if output == "-":
            st = cat.export(sys.stdout.buffer, since=since)
            sys.stdout.buffer.flush()
        else:
            tmp = output + ".partial"
            from ebas.repo.privatefs import open_private

            with open_private(tmp) as fh:  # every path in plain text: owner only
                st = cat.export(fh, since=since)
            os.replace(tmp, output)
    msg = (f"exported {st.snapshots} snapshot(s), {st.tombstones} tombstone(s), {st.trees} trees; "
           f"next time use --since {st.mark}")
    if output == "-":
        env.note(msg)
    else:
        env.emit(st.to_json(), msg)


@catalog_group.command("import")
@click.argument("file")
@json_option
@click.pass_context
def import_cmd(ctx, file):
    """Import an export file from another site (importing twice changes nothing)."""
    env = get_env(ctx)
    with open_env_catalog(env) as cat:
        if file == "-":
            st = cat.import_(sys.stdin.buffer)
        else:
            try:
                fh = open(file, "rb")
            except OSError as exc:
                raise UsageError(f"cannot read {file!r}: {exc.strerror}") from exc
            with fh:
                st = cat.import_(fh)
    env.emit(st.to_json(), f"imported {st.snapshots_added} snapshot(s), {st.sites_added} site record(s), "
                           f"{st.tombstones_added} tombstone(s); removed {st.snapshots_removed}; "
                           f"{st.unchanged} already known")


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    for c in (catalog_group, find_cmd, history_cmd):
        cli.add_command(c)
