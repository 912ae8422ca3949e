"""``ebas forget`` and ``ebas hold add|remove|list|compliance``."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from ebas.cli.app import command, get_env, group, seconds
from ebas.cli.render import human_size, local_time, table


def _local_tz():
    return datetime.now().astimezone().tzinfo


def _until(text: str, now_ns: int) -> datetime:
    """``--until``: a point in time (docs/units.md) or a duration from now (``7y``: a retention
    can only end in the future), as an aware datetime."""
    import re

    from ebas.units import parse_time

    now = datetime.fromtimestamp(now_ns / 1e9, timezone.utc)
    t = text.strip()
    if re.match(r"\+?[\d.]+\s*[a-zA-Z]", t):  # a duration: from now on
        t = "+" + t.lstrip("+")
    return parse_time(t, now=now)


def _max_unused(text: str) -> float:
    """``--max-unused``: a percentage (``10%``) or ``unlimited`` (never repack)."""
    from ebas.units import parse_percent

    return 1.0 if text.strip().lower() == "unlimited" else parse_percent(text)


def prune_options(f):
    """The options of ``ebas prune`` (shared by ``forget --prune``)."""
    f = click.option("--lock-wait", default="0s", show_default=True, metavar="DURATION",
                     help="wait this long for another prune to finish instead of refusing")(f)
    f = click.option("--max-wait", default="1h", show_default=True, metavar="DURATION",
                     help="wait this long for backups running at the start to finish before deleting "
                          "(what is left is finished by the next prune)")(f)
    f = click.option("--grace", default="1h", show_default=True, metavar="DURATION",
                     help="never delete unindexed packs younger than this (a backup may be writing them)")(f)
    f = click.option("--max-unused", default="10%", show_default=True, metavar="PERCENT",
                     help="unused space to tolerate: packs with more than this share unused are repacked, "
                          "emptiest first, until at most this share of the stored bytes is unused")(f)
    return f


def prune_options_value(*, max_unused: str, grace: str, max_wait: str, lock_wait: str):
    """The ``ebas.api.PruneOptions`` of the prune flags."""
    from ebas import api

    return api.PruneOptions(max_unused=_max_unused(max_unused), grace=seconds(grace),
                            max_wait=seconds(max_wait), lock_wait=seconds(lock_wait))


def prune_text(env, res, *, dry_run: bool = False) -> str:
    """The text report of a prune (problems go to stderr as warnings)."""
    p = res.plan
    lines = [f"marked {p.get('snapshots', 0)} snapshot(s): {p.get('trees', 0)} trees, "
             f"{p.get('referenced_blobs', 0)} referenced blobs ({human_size(p.get('live_bytes', 0))} live, "
             f"{human_size(p.get('unused_bytes', 0))} unused)"]
    if dry_run:
        lines.append(f"would delete {p.get('packs_delete', 0)} pack(s), repack {p.get('packs_repack', 0)} "
                     f"(copying {human_size(p.get('repack_bytes', 0))}), adopt {p.get('packs_adopt', 0)}: "
                     f"frees about {human_size(p.get('reclaimable_bytes', 0))}")
    else:
        lines.append(f"deleted {res.packs_deleted} pack(s), repacked {res.packs_repacked} "
                     f"({res.blobs_copied} blobs, {human_size(res.bytes_copied)} copied), adopted "
                     f"{res.packs_adopted}, kept {res.packs_resurrected} that new snapshots need")
        lines.append(f"packs: {human_size(res.bytes_before)} before, {human_size(res.bytes_after)} after, "
                     f"{human_size(res.bytes_freed)} freed in {res.duration_s:.1f}s")
    if p.get("packs_locked"):
        until = datetime.fromtimestamp(p["locked_until_ns"] / 1e9, timezone.utc).isoformat(timespec="seconds")
        lines.append(f"left {p['packs_locked']} pack(s) alone: under write-once retention (latest until {until}); "
                     "a prune after that date frees them")
    for pend in res.pending:
        who = "; ".join(pend.get("waiting_for", [])) or "a damaged index or snapshot"
        lines.append(f"pending: {pend['packs']} pack(s) of {pend['record']} wait for {who}; run prune again later")
    for prob in res.problems:
        env.note(f"warning: {prob}")
    return "\n".join(lines)


@command("forget")
@click.argument("snapshots", nargs=-1)
@click.option("--keep-last", type=click.IntRange(min=0), default=0, help="keep the N newest snapshots")
@click.option("--keep-hourly", type=click.IntRange(min=0), default=0, help="keep the newest of each of N hours")
@click.option("--keep-daily", type=click.IntRange(min=0), default=0, help="keep the newest of each of N days")
@click.option("--keep-weekly", type=click.IntRange(min=0), default=0, help="keep the newest of each of N weeks")
@click.option("--keep-monthly", type=click.IntRange(min=0), default=0, help="keep the newest of each of N months")
@click.option("--keep-yearly", type=click.IntRange(min=0), default=0, help="keep the newest of each of N years")
@click.option("--keep-within", metavar="DURATION", help="keep everything newer than DURATION (e.g. 30d, 1y6mo; docs/units.md)")
@click.option("--keep-tag", "keep_tags", multiple=True, help="keep snapshots with this tag (repeatable)")
@click.option("--group-by", default="host,paths", show_default=True,
              help="apply the policy per group: any of host, paths, tags ('' = all snapshots together)")
@click.option("--host", "hosts", multiple=True, help="only consider snapshots of this host (repeatable: any of them)")
@click.option("--tag", "tags", multiple=True, help="only consider snapshots with this tag")
@click.option("--path", help="only consider snapshots of this source path")
@click.option("-n", "--dry-run", is_flag=True, help="list every snapshot with the rule that keeps or removes it")
@click.option("--allow-empty", is_flag=True, help="allow removing every snapshot of a group")
@click.option("--prune", "then_prune", is_flag=True, help="prune right after removing snapshots")
@prune_options
@click.pass_context
def forget_cmd(ctx, snapshots, keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly,
               keep_within, keep_tags, group_by, hosts, tags, path, dry_run, allow_empty, then_prune, max_unused,
               grace, max_wait, lock_wait):
    """Remove snapshots by retention policy (or the given SNAPSHOTS); data goes with prune.

    Legal holds and compliance retention always keep their snapshots; a snapshot dated in
    the future (clock skew) is never removed by a policy.
    """
    from ebas import api
    from ebas.cli.progressview import emit_summary, progress_view

    env = get_env(ctx)
    policy = api.RetentionPolicy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly,
                                 seconds(keep_within) if keep_within else 0.0, tuple(keep_tags))
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    prune_opts = prune_options_value(max_unused=max_unused, grace=grace, max_wait=max_wait, lock_wait=lock_wait) \
        if then_prune else None
    repo = env.open_repo()
    with progress_view(env) as progress:
        res = api.forget(repo, policy, snapshot_ids=list(snapshots), dry_run=dry_run, allow_empty=allow_empty,
                         group_by=groups, host=list(hosts) or None, tags=list(tags) or None, path=path,
                         tz=_local_tz(), then_prune=prune_opts, update_catalog=env.catalog_enabled(),
                         catalog=env.catalog_location(), site=env.catalog_args()["site"], progress=progress)
    if res.catalog_error:
        env.warn(f"warning: the catalog was not updated: {res.catalog_error}\n  the snapshots are removed; "
                 "'ebas catalog sync' will catch up")
    blocks = []
    for g in res.groups:
        rows = [[d.snapshot.id[:8], local_time(d.snapshot.time_ns), d.snapshot.level,
                 "keep" if d.keep else "remove", "; ".join(d.reasons)] for d in g.decisions]
        head = f"{g.label()}: keep {len(g.kept)}, remove {len(g.dropped)}" if res.policy is not None else \
            f"remove {len(g.dropped)} snapshot(s)"
        blocks.append(head + "\n" + table(["ID", "Time", "Level", "Action", "Reasons"], rows))
    n = len(res.to_remove)
    blocks.append(f"dry run: would remove {n} snapshot(s)" if dry_run else f"removed {len(res.removed)} snapshot(s)")
    if res.prune is not None:
        blocks.append(prune_text(env, res.prune))
    emit_summary(env, res.to_json(), "\n\n".join(blocks))


@group("hold")
def hold_group():
    """Legal holds and compliance retention (protect snapshots from forget)."""


@hold_group.command("add")
@click.argument("snapshot")
@click.option("--reason", required=True, help="why (shown to whoever tries to remove the snapshot)")
@click.option("--until", metavar="DATE|DURATION",
              help="compliance retention until DATE (or for DURATION, e.g. 7y; docs/units.md): can never be "
                   "released or shortened")
@click.pass_context
def hold_add(ctx, snapshot, reason, until):
    """Put a legal hold (or with --until a compliance retention) on SNAPSHOT."""
    from ebas import api

    env = get_env(ctx)
    repo = env.open_repo()
    res = api.add_hold(repo, snapshot, reason, until=_until(until, repo.clock.now_ns()) if until else None)
    rec = res.added
    what = "legal hold" if rec.type == "hold" else f"compliance retention until {local_time(rec.until_ns)}"
    env.emit(res, f"{what} {rec.id[:8]} on snapshot {rec.snapshot[:8]}: {reason}")


@hold_group.command("remove")
@click.argument("snapshot")
@click.option("--reason", required=True, help="why the hold ends (kept in the audit trail)")
@click.option("--id", "hold_id", help="release only this hold (id prefix); default: every legal hold on SNAPSHOT")
@click.pass_context
def hold_remove(ctx, snapshot, reason, hold_id):
    """Release the legal hold(s) on SNAPSHOT (compliance retention cannot be released)."""
    from ebas import api

    env = get_env(ctx)
    res = api.release_hold(env.open_repo(), snapshot, reason, hold_id=hold_id)
    env.emit(res, "\n".join(f"released hold {r.hold[:8]} on snapshot {r.snapshot[:8]}" for r in res.released))


@hold_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="also show expired retentions")
@click.pass_context
def hold_list(ctx, show_all):
    """List the protections of every snapshot and the repository's minimum retention."""
    from ebas import api

    env = get_env(ctx)
    res = api.list_holds(env.open_repo(), include_inactive=show_all)
    for p in res.problems:
        env.note(f"warning: unreadable hold record {p}")
    rows = [[v.snapshot[:8], v.kind, "active" if v.active else "expired", v.description] for v in res.views]
    minimum = api.format_duration(res.min_retention_ns / 1e9) if res.min_retention_ns else "none"
    env.emit(res, table(["Snapshot", "Kind", "State", "Protection"], rows) + f"\nrepository minimum retention: {minimum}")


@hold_group.command("compliance")
@click.option("--min-retention", metavar="DURATION", help="raise the repository's minimum retention (e.g. 90d, 7y)")
@click.option("--reason", default="", help="why (kept in the audit trail)")
@click.pass_context
def hold_compliance(ctx, min_retention, reason):
    """Show or raise the compliance minimum retention of every snapshot (never lowered)."""
    from ebas import api

    env = get_env(ctx)
    st = api.compliance(env.open_repo(), min_retention=seconds(min_retention) if min_retention else None,
                        reason=reason)
    text = ("compliance mode: every snapshot is kept at least " + api.format_duration(st.min_retention_ns / 1e9)
            if st.min_retention_ns else "compliance mode is off (no minimum retention)")
    env.emit(st, text)


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(forget_cmd)
    cli.add_command(hold_group)
