"""``ebas init`` and ``ebas backup``."""

from __future__ import annotations

import click

from ebas.cli.app import get_env, json_option
from ebas.cli.render import human_size
from ebas.errors import EXIT_PARTIAL, UsageError


@click.command("init")
@click.option("--chunker-min", metavar="SIZE", help="minimum chunk size (e.g. 256KiB; sizes: docs/units.md)")
@click.option("--chunker-avg", metavar="SIZE", help="average chunk size (e.g. 1MiB)")
@click.option("--chunker-max", metavar="SIZE", help="maximum chunk size (e.g. 8MiB)")
@click.option("--pack-size", metavar="SIZE", help="target pack size, 1MiB..2GiB (default 16MiB)")
@click.option("--no-compression", is_flag=True, help="store blobs without zstd")
@click.option("--kdf", type=click.Choice(["argon2id", "scrypt"]), default="argon2id", show_default=True)
@click.option("--object-lock", type=click.Choice(["governance", "compliance"]),
              help="S3 only: write every object with Object Lock retention in this mode")
@click.option("--lock-days", type=click.IntRange(min=1), help="retention length for --object-lock, in days")
@json_option
@click.pass_context
def init_cmd(ctx, chunker_min, chunker_avg, chunker_max, pack_size, no_compression, kdf, object_lock, lock_days):
    """Create a new repository."""
    from dataclasses import replace

    from ebas.api import init_repository
    from ebas.chunking.params import ChunkerParams
    from ebas.repo.config import DEFAULT_PACK_SIZE
    from ebas.storage.redact import redact_url
    from ebas.units import parse_size

    env = get_env(ctx)
    url = _with_object_lock(env.url(), object_lock, lock_days)
    params = ChunkerParams()
    sizes = {k: parse_size(v) for k, v in (("min_size", chunker_min), ("avg_size", chunker_avg),
                                           ("max_size", chunker_max)) if v}
    pack_bytes = _pack_size(pack_size) if pack_size else DEFAULT_PACK_SIZE
    if sizes:
        params = replace(params, **sizes)
    password = env.password("new repository password", confirm=True)
    if not password:
        raise UsageError("refusing an empty password")
    repo = init_repository(url, password, chunker=params,
                           pack_size=pack_bytes,
                           compression="none" if no_compression else "zstd",
                           kdf=_kdf_params(kdf))
    shown = redact_url(url)  # credentials in the URL are never printed
    env.emit({"repository": shown, "id": repo.config.repo_id, "key_id": repo.key_id,
              "chunker": repo.config.chunker.to_dict(), "pack_size": repo.config.pack_size},
             f"created ebas repository {repo.config.repo_id[:10]} at {shown}\n"
             "keep the password safe: without it the data cannot be recovered")


def _pack_size(text: str) -> int:
    """``--pack-size``: a size of docs/units.md between 1MiB and 2GiB (a bare ``16`` is 16 bytes: refused)."""
    from ebas.units import format_size, parse_size

    n = parse_size(text)
    if not (1 << 20) <= n <= (1 << 31):
        raise UsageError(f"--pack-size {text} is {format_size(n)}: a pack size must be between 1MiB and 2GiB",
                         hint="give a unit, e.g. --pack-size 16MiB (a number without a unit is bytes)")
    return n


def _with_object_lock(url: str, mode: str | None, days: int | None) -> str:
    """``url`` with the S3 store options ``object_lock=MODE&lock_days=N`` added."""
    if mode is None and days is None:
        return url
    if mode is None or days is None:
        raise UsageError("--object-lock and --lock-days go together")
    if not url.lower().startswith("s3://"):
        raise UsageError("--object-lock needs an s3:// repository (a bucket created with Object Lock enabled)")
    return f"{url}{'&' if '?' in url else '?'}object_lock={mode}&lock_days={days}"


def _kdf_params(algorithm: str):
    """Production KDF parameters for ``algorithm`` (the CLI has no switch for weaker ones)."""
    from ebas.crypto.kdf import KdfParams
    from ebas.runtime import SYSTEM_ENTROPY

    return KdfParams.new(SYSTEM_ENTROPY, algorithm)


@click.command("backup")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--level", type=click.Choice(["full", "differential", "incremental", "auto"]), default="incremental",
              show_default=True, help="how much of the source is re-read (the first backup is always full); "
              "auto: a full per --full-every / --full-on, else incremental")
@click.option("--full-every", metavar="DURATION",
              help="with --level auto: a full when the last is this old (7d, 2w, 1mo; see docs/units.md)")
@click.option("--full-on", metavar="WEEKDAY", help="with --level auto: a full on this weekday (e.g. sun)")
@click.option("--tag", "tags", multiple=True, help="tag the snapshot (repeatable)")
@click.option("--host", help="host name to record (default: this machine)")
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help="exclude matching paths (repeatable)")
@click.option("--exclude-file", "exclude_files", multiple=True, metavar="FILE", help="read exclude patterns from FILE")
@click.option("-x", "--one-file-system", is_flag=True, help="do not cross file system boundaries")
@click.option("--stdin", "use_stdin", is_flag=True, help="back up standard input as one file")
@click.option("--stdin-filename", default="stdin", show_default=True, help="file name for --stdin")
@click.option("--time", "time_iso", metavar="TIME",
              help="record this snapshot time instead of now (ISO 8601, e.g. 2026-03-01T12:00; docs/units.md)")
@json_option
@click.pass_context
def backup_cmd(ctx, paths, level, full_every, full_on, tags, host, excludes, exclude_files, one_file_system,
               use_stdin, stdin_filename, time_iso):
    """Back up PATHS (or standard input) into the repository."""
    from ebas.backup.archiver import Archiver, BackupOptions
    from ebas.cli.progressview import emit_summary, progress_view

    env = get_env(ctx)
    if use_stdin and paths:
        raise UsageError("give either paths or --stdin, not both")
    if not use_stdin and not paths:
        raise UsageError("nothing to back up: give at least one path (or --stdin)")
    time_ns = None
    if time_iso:
        from ebas.units import epoch_ns, parse_time

        time_ns = epoch_ns(parse_time(time_iso))
    repo = env.open_repo()
    if level == "auto" or full_every or full_on:
        level = _auto_level(env, repo, level, paths, host, full_every, full_on, time_ns, use_stdin, stdin_filename)
    opts = BackupOptions(paths=list(paths), level=level, tags=list(tags), host=host or "", excludes=list(excludes),
                         exclude_files=list(exclude_files),
                         one_file_system=one_file_system, stdin_filename=stdin_filename if use_stdin else "",
                         time_ns=time_ns)
    with progress_view(env) as progress:
        result = Archiver(repo, opts, progress=progress).run()
    from ebas.cli.cmd_catalog import index_new_snapshot

    index_new_snapshot(env, repo, result.snapshot)  # never fails the backup
    s = result.snapshot
    st = s.stats
    for e in result.errors:
        env.note(f"error: {e}")
    text = (f"snapshot {s.id[:8]} saved ({s.level}{', PARTIAL' if s.partial else ''})\n"
            f"files: {st['files']} ({st['files_new']} new, {st['files_changed']} changed, "
            f"{st['files_unmodified']} unmodified), dirs: {st['dirs']}\n"
            f"processed {human_size(st['bytes_logical'])}, read {human_size(st['bytes_read'])}, "
            f"added {human_size(st['bytes_stored_added'])} to the repository in {st['duration_s']:.2f}s")
    emit_summary(env, result.to_json(), text)
    if s.partial:
        ctx.exit(EXIT_PARTIAL)


def _auto_level(env, repo, level, paths, host, full_every, full_on, time_ns, use_stdin, stdin_filename) -> str:
    """The concrete level for ``--level auto`` (see :func:`ebas.lifecycle.chains.resolve_level`)."""
    import os
    import socket

    from ebas.lifecycle.chains import parse_weekday, resolve_level
    from ebas.units import parse_duration

    if level != "auto":
        raise UsageError("--full-every and --full-on go with --level auto")
    if not full_every and not full_on:
        raise UsageError("--level auto needs --full-every DURATION and/or --full-on WEEKDAY")
    srcs = ["/" + stdin_filename.strip("/")] if use_stdin else sorted({os.path.abspath(p) for p in paths})
    now = time_ns or repo.clock.now_ns()
    from datetime import datetime

    chosen, why = resolve_level(repo.snapshots(), host or socket.gethostname(), srcs, now_ns=now,
                                full_every=parse_duration(full_every) if full_every else 0.0,
                                full_on=parse_weekday(full_on) if full_on else None,
                                tz=datetime.now().astimezone().tzinfo)
    env.note(f"level auto: {chosen} ({why})")
    return chosen


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(init_cmd)
    cli.add_command(backup_cmd)
