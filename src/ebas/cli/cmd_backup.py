"""``ebas init`` and ``ebas backup``."""

from __future__ import annotations

import click

from ebas.cli.app import command, get_env, seconds
from ebas.cli.render import human_size
from ebas.errors import EXIT_PARTIAL, UsageError


@command("init")
@click.option("--chunker-min", metavar="SIZE", help="minimum chunk size (e.g. 256KiB; sizes: docs/units.md)")
@click.option("--chunker-avg", metavar="SIZE", help="average chunk size (e.g. 1MiB)")
@click.option("--chunker-max", metavar="SIZE", help="maximum chunk size (e.g. 8MiB)")
@click.option("--pack-size", metavar="SIZE", help="target pack size, 1MiB..2GiB (default 16MiB)")
@click.option("--no-compression", is_flag=True, help="store blobs without zstd")
@click.option("--kdf", type=click.Choice(["argon2id", "scrypt"]), default="argon2id", show_default=True)
@click.option("--object-lock", type=click.Choice(["governance", "compliance"]),
              help="S3 only: write every object with Object Lock retention in this mode")
@click.option("--lock-days", type=click.IntRange(min=1), help="retention length for --object-lock, in days")
@click.pass_context
def init_cmd(ctx, chunker_min, chunker_avg, chunker_max, pack_size, no_compression, kdf, object_lock, lock_days):
    """Create a new repository."""
    from ebas import api

    env = get_env(ctx)
    url = env.url()
    password = env.password("new repository password", confirm=True)
    kwargs = {"pack_size": _pack_size(pack_size)} if pack_size else {}
    res = api.init(url, password, chunker_min=_size(chunker_min), chunker_avg=_size(chunker_avg),
                   chunker_max=_size(chunker_max),
                   compression="none" if no_compression else "zstd", kdf=env.kdf(kdf), object_lock=object_lock,
                   lock_days=lock_days, **kwargs)
    env.emit(res, f"created ebas repository {res.id[:10]} at {res.repository}\n"
                  "keep the password safe: without it the data cannot be recovered")


@command("backup")
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
@click.pass_context
def backup_cmd(ctx, paths, level, full_every, full_on, tags, host, excludes, exclude_files, one_file_system,
               use_stdin, stdin_filename, time_iso):
    """Back up PATHS (or standard input) into the repository, then index the snapshot in the catalog."""
    from ebas import api
    from ebas.cli.progressview import emit_summary, progress_view

    env = get_env(ctx)
    if use_stdin and paths:
        raise UsageError("give either paths or --stdin, not both")
    if not use_stdin and not paths:
        raise UsageError("nothing to back up: give at least one path (or --stdin)")
    if (full_every or full_on) and level != "auto":
        raise UsageError("--full-every and --full-on go with --level auto")
    time_ns = None
    if time_iso:
        from ebas.units import epoch_ns, parse_time

        time_ns = epoch_ns(parse_time(time_iso))
    repo = env.open_repo()
    with progress_view(env) as progress:
        result = api.backup(repo, list(paths), level=level, tags=list(tags), host=host or "", excludes=list(excludes),
                        exclude_files=list(exclude_files), one_file_system=one_file_system,
                        stdin_filename=stdin_filename if use_stdin else "", time_ns=time_ns,
                        full_every=seconds(full_every) if full_every else None, full_on=full_on,
                        update_catalog=env.catalog_enabled(), catalog=env.catalog_location(),
                        site=env.catalog_args()["site"], progress=progress)
    if result.level_reason:
        env.note(f"level auto: {result.snapshot.level} ({result.level_reason})")
    if result.catalog_error:
        env.warn(f"warning: the catalog was not updated: {result.catalog_error}\n  the backup is complete; "
                 "'ebas catalog sync' will index it later")
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


def _size(text: str | None) -> int | None:
    from ebas.units import parse_size

    return parse_size(text) if text else None


def _pack_size(text: str) -> int:
    """``--pack-size``: a size of docs/units.md between 1MiB and 2GiB (a bare ``16`` is 16 bytes: refused)."""
    from ebas.units import format_size, parse_size

    n = parse_size(text)
    if not (1 << 20) <= n <= (1 << 31):
        raise UsageError(f"--pack-size {text} is {format_size(n)}: a pack size must be between 1MiB and 2GiB",
                         hint="give a unit, e.g. --pack-size 16MiB (a number without a unit is bytes)")
    return n


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(init_cmd)
    cli.add_command(backup_cmd)
