"""``ebas transfer SRC DST`` and ``ebas transfer list | status | resume | cancel``."""

from __future__ import annotations

import json
import sys

import click

from ebas.cli.app import Group, get_env
from ebas.cli.render import human_size


class _TransferGroup(Group):
    """``ebas transfer SRC DST ...`` means ``ebas transfer start SRC DST ...``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


@click.group("transfer", cls=_TransferGroup)
def transfer_group():
    """Copy archive objects between stores: throttled, multi-stream, resumable, verified.

    \b
    ebas transfer SRC DST [--streams N] [--part-size SIZE] [--bwlimit RATE|TIMETABLE]
                          [--window 22:00-06:00] [--adaptive] [--name NAME] [--json]
    ebas transfer list | status JOB | resume JOB | cancel JOB

    SRC and DST are store URLs or paths. Jobs are journalled (EBAS_TRANSFER_DIR, default
    ~/.local/state/ebas/transfers): running the same command again, or 'resume', sends
    nothing that was completed.
    """


def _progress(env):
    """A tracker that prints JSON status lines (--json) or a status line on a terminal."""
    from ebas.progress import Tracker

    if env.json:
        return Tracker(interval=1.0, listeners=[lambda st: click.echo(json.dumps(st.to_json(), default=str))])
    if env.quiet or not sys.stderr.isatty():
        return Tracker()

    def line(st):
        pct = "" if st.fraction is None else f"{st.fraction * 100:5.1f}% "
        eta = "" if st.eta_s is None else f" ETA {int(st.eta_s // 60)}m{int(st.eta_s % 60):02d}s"
        click.echo(f"\r{pct}{human_size(st.bytes_done)} of {human_size(st.bytes_total or 0)} "
                   f"at {human_size(st.rate_bps)}/s{eta}   ", err=True, nl=st.finished)

    return Tracker(interval=0.5, listeners=[line])


def _report(env, res) -> None:
    text = (f"transfer {res.job}: {res.state}; {res.objects_sent} object(s) sent, {res.objects_present} already "
            f"there, {res.objects_failed} failed; {human_size(res.bytes_sent)} sent of {human_size(res.bytes_total)}"
            + (f"; {res.parts_reused} part(s) reused" if res.parts_reused else ""))
    for name in res.changed:
        text += f"\n  changed during the transfer (sent again): {name}"
    for name, err in sorted(res.failures.items()):
        text += f"\n  FAILED {name}: {err}"
    if env.json:  # JSON lines: status lines, then the result on one line
        click.echo(json.dumps({"type": "result", **res.to_json()}))
    else:
        env.emit(None, text)
    if res.state == "failed":
        click.get_current_context().exit(1)
    if res.state == "cancelled":
        click.get_current_context().exit(130)


@transfer_group.command("start")
@click.argument("src")
@click.argument("dst")
@click.option("--streams", type=int, default=4, show_default=True, help="parallel sends")
@click.option("--part-size", default="16MiB", show_default=True, help="objects larger than this go in parts of this size")
@click.option("--bwlimit", metavar="RATE|TIMETABLE", help="e.g. 50MiB/s or 'Mon-Fri 08:00-18:00 10MiB/s; else unlimited'")
@click.option("--window", metavar="HH:MM-HH:MM", help="send only inside this daily window (paused outside)")
@click.option("--name", help="job name (default: derived from SRC, DST and --prefix)")
@click.option("--prefix", default="", help="only objects whose names start with this")
@click.option("--verify", type=click.Choice(["sent", "readback"]), default="sent", show_default=True,
              help="readback reads every object back from DST (twice the traffic)")
@click.option("--adaptive", is_flag=True, help="back off when the link's queueing delay rises (other traffic), "
              "climb back when it is idle; --bwlimit is then the ceiling")
@click.pass_context
def start_cmd(ctx, src, dst, streams, part_size, bwlimit, window, name, prefix, verify, adaptive):
    """Copy every object of SRC (under --prefix) to DST."""
    from ebas import api
    from ebas.units import parse_size

    env = get_env(ctx)
    res = api.transfer(src, dst, name=name, streams=streams, part_size=parse_size(part_size), bwlimit=bwlimit,
                   window=window, prefix=prefix, verify=verify, adaptive=adaptive, progress=_progress(env))
    _report(env, res)


@transfer_group.command("resume")
@click.argument("job")
@click.option("--streams", type=int, help="change the number of parallel sends")
@click.option("--bwlimit", metavar="RATE|TIMETABLE", help="change the bandwidth limit")
@click.pass_context
def resume_cmd(ctx, job, streams, bwlimit):
    """Continue JOB where it stopped."""
    from ebas import api

    env = get_env(ctx)
    _report(env, api.transfer_resume(job, streams=streams, bwlimit=bwlimit, progress=_progress(env)))


def _status_text(st) -> str:
    pct = f"{st.bytes_done * 100 / st.bytes_total:.1f}%" if st.bytes_total else "-"
    eta = "" if st.eta_s is None else f", ETA {int(st.eta_s)}s"
    objs = ", ".join(f"{n} {k}" for k, n in sorted(st.objects.items()))
    text = (f"{st.name}: {st.state}, {pct} ({human_size(st.bytes_done)} of {human_size(st.bytes_total)}), "
            f"{human_size(st.rate_bps)}/s{eta}\n  {st.src} -> {st.dst}\n  objects: {objs or 'none yet'}")
    for name, err in sorted(st.failures.items()):
        text += f"\n  FAILED {name}: {err}"
    return text


@transfer_group.command("list")
@click.pass_context
def list_cmd(ctx):
    """Every transfer job with its state."""
    from ebas import api

    env = get_env(ctx)
    jobs = api.transfer_jobs()
    env.emit([j.to_json() for j in jobs], "\n".join(
        f"{j.name:<16} {j.state:<12} {human_size(j.bytes_done):>10} of {human_size(j.bytes_total):<10} {j.src} -> {j.dst}"
        for j in jobs) or "no transfer jobs")


@transfer_group.command("status")
@click.argument("job")
@click.pass_context
def status_cmd(ctx, job):
    """Where JOB stands (also while another process runs it)."""
    from ebas import api

    env = get_env(ctx)
    st = api.transfer_status(job)
    env.emit(st.to_json(), _status_text(st))


@transfer_group.command("cancel")
@click.argument("job")
@click.pass_context
def cancel_cmd(ctx, job):
    """Stop JOB and discard its unfinished uploads (complete objects stay)."""
    from ebas import api

    env = get_env(ctx)
    st = api.transfer_cancel(job)
    env.emit(st.to_json(), f"{st.name}: {st.state}")


def register(cli: click.Group) -> None:
    """Attach this module's commands."""
    cli.add_command(transfer_group)
