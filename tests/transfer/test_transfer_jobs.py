"""Transfer jobs through the API and the CLI: named, journalled, resumable, cancellable,
status readable from another process, off-peak windows in simulated time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from ebas import api
from ebas.cli.app import cli
from ebas.errors import UsageError
from ebas.runtime import FakeClock
from ebas.storage.backends.file import FileStore
from ebas.transfer import jobs

EBAS_BIN = str(Path(sys.executable).with_name("ebas"))
KiB = 1024


def make_source(path: Path, objects: dict[str, int]) -> dict[str, bytes]:
    store = FileStore(path, fsync=False)
    out = {}
    for i, (name, size) in enumerate(sorted(objects.items())):
        out[name] = os.urandom(size)
        store.put(name, out[name])
    return out


def tree(path: Path) -> dict[str, bytes]:
    store = FileStore(path, fsync=False)
    return {o.name: store.get(o.name) for o in store.list()}


def test_api_transfer_copies_and_a_rerun_sends_nothing(tmp_path):
    want = make_source(tmp_path / "src", {"data/p1": 300 * KiB, "data/p2": 10 * KiB, "config": 100})
    res = api.transfer(str(tmp_path / "src"), str(tmp_path / "dst"), name="nightly", part_size=64 * KiB,
                       journal_dir=str(tmp_path / "j"))
    assert res.ok and res.objects_sent == 3 and tree(tmp_path / "dst") == want
    again = api.transfer(str(tmp_path / "src"), str(tmp_path / "dst"), name="nightly", journal_dir=str(tmp_path / "j"))
    assert again.ok and again.bytes_sent == 0 and again.objects_present == 3
    st = jobs.status("nightly", journal_dir=str(tmp_path / "j"))
    assert (st.state, st.bytes_done, st.bytes_total, st.objects) == ("done", 310 * KiB + 100, 310 * KiB + 100, {"done": 3})


def test_same_name_other_source_is_refused(tmp_path):
    make_source(tmp_path / "src", {"a": 1})
    api.transfer(str(tmp_path / "src"), str(tmp_path / "dst"), name="n", journal_dir=str(tmp_path / "j"))
    with pytest.raises(UsageError, match="copies"):
        api.transfer(str(tmp_path / "src"), str(tmp_path / "other"), name="n", journal_dir=str(tmp_path / "j"))


def test_prefix_selects_objects(tmp_path):
    want = make_source(tmp_path / "src", {"data/a": 5, "index/b": 6})
    api.transfer(str(tmp_path / "src"), str(tmp_path / "dst"), prefix="data/", journal_dir=str(tmp_path / "j"))
    assert tree(tmp_path / "dst") == {"data/a": want["data/a"]}


def test_window_pauses_until_the_off_peak_window_opens(tmp_path):
    make_source(tmp_path / "src", {"a": 200 * KiB, "b": 50 * KiB})
    start = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)  # Monday 09:00
    clock = FakeClock(int(start.timestamp()) * 10**9)
    res = jobs.transfer(str(tmp_path / "src"), str(tmp_path / "dst"), window="22:00-06:00", part_size=64 * KiB,
                        journal_dir=str(tmp_path / "j"), clock=clock, tz=timezone.utc)
    assert res.ok
    assert clock.now() == pytest.approx(datetime(2026, 11, 30, 22, tzinfo=timezone.utc).timestamp(), abs=1)


def test_window_with_a_rate_holds_the_rate_inside_the_window(tmp_path):
    make_source(tmp_path / "src", {"a": 1024 * KiB})
    start = datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc)  # inside the window
    clock = FakeClock(int(start.timestamp()) * 10**9)
    jobs.transfer(str(tmp_path / "src"), str(tmp_path / "dst"), window="22:00-06:00", bwlimit="64KiB/s",
                  journal_dir=str(tmp_path / "j"), clock=clock, tz=timezone.utc)
    assert clock.monotonic() == pytest.approx(16.0, rel=0.01)


def test_window_and_timetable_together_are_refused():
    with pytest.raises(UsageError, match="window"):
        jobs.link_spec("Mon-Fri 08:00-18:00 1MiB/s", "22:00-06:00")
    with pytest.raises(UsageError, match="25:00"):
        jobs.link_spec(None, "22:00-25:00")


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EBAS_TRANSFER_DIR", str(tmp_path / "j"))
    runner = CliRunner()

    def invoke(*args, code=0):
        res = runner.invoke(cli, list(args), catch_exceptions=True)
        if res.exception and not isinstance(res.exception, SystemExit):
            raise res.exception
        assert res.exit_code == code, res.output
        return res.output

    return invoke


def test_cli_transfer_list_status(tmp_path, cli_env):
    want = make_source(tmp_path / "src", {"p": 100 * KiB, "q": 1})
    out = cli_env("transfer", str(tmp_path / "src"), str(tmp_path / "dst"), "--name", "job1", "--part-size", "32KiB",
                  "--streams", "2", "--json")
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result = [x for x in lines if x.get("type") == "result"]
    assert result and result[0]["state"] == "done" and result[0]["objects_sent"] == 2
    assert tree(tmp_path / "dst") == want
    listed = json.loads(cli_env("transfer", "list", "--json"))
    assert [(j["name"], j["state"]) for j in listed] == [("job1", "done")]
    st = json.loads(cli_env("transfer", "status", "job1", "--json"))
    assert st["bytes_done"] == st["bytes_total"] == 100 * KiB + 1
    assert "job1: done, 100.0%" in cli_env("transfer", "status", "job1")


def test_cli_reports_failed_objects_by_name_and_exits_1(tmp_path, cli_env):
    make_source(tmp_path / "src", {"ok": 10, "bad": 10})
    dst = tmp_path / "dst"
    (dst / "bad").mkdir(parents=True)  # a directory where the object should go: a permanent failure
    (dst / "bad" / "x").write_bytes(b"")
    out = cli_env("transfer", str(tmp_path / "src"), str(dst), code=1)
    assert "FAILED bad:" in out and "1 failed" in out
    assert (dst / "ok").read_bytes() == (tmp_path / "src" / "ok").read_bytes()


def test_cli_unknown_job(cli_env):
    with pytest.raises(UsageError, match="no transfer job named 'nope'"):
        cli_env("transfer", "status", "nope")


def test_status_and_cancel_from_another_process(tmp_path):
    make_source(tmp_path / "src", {"big": 2048 * KiB})
    env = {**os.environ, "EBAS_TRANSFER_DIR": str(tmp_path / "j")}
    proc = subprocess.Popen([EBAS_BIN, "transfer", str(tmp_path / "src"), str(tmp_path / "dst"), "--name", "slow",
                             "--bwlimit", "512KiB/s", "--part-size", "128KiB", "--streams", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        st = None
        while time.monotonic() < deadline:
            try:
                st = jobs.status("slow", journal_dir=str(tmp_path / "j"))
                if st.state == "running" and st.bytes_done > 0:
                    break
            except UsageError:
                pass
            time.sleep(0.1)
        assert st is not None and st.state == "running" and 0 < st.bytes_done < st.bytes_total
        assert st.rate_bps > 0 and st.eta_s is not None
        out = subprocess.run([EBAS_BIN, "transfer", "status", "slow"], env=env, capture_output=True, text=True)
        assert out.returncode == 0 and "slow: running" in out.stdout
        jobs.cancel("slow", journal_dir=str(tmp_path / "j"))
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    st = jobs.status("slow", journal_dir=str(tmp_path / "j"))
    assert st.state == "cancelled"
    assert not (tmp_path / "dst").exists() or FileStore(tmp_path / "dst").uploads() == []
    assert not (tmp_path / "dst" / "big").exists()


def test_status_of_a_job_whose_process_died_is_interrupted(tmp_path):
    from ebas.transfer.journal import Journal

    j = Journal(str(tmp_path / "j"))
    job = j.create_job("dead", "a", "b", {}, 1.0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    j.start_run(job.id, 2.0, dead.pid, 100, 10)
    st = jobs.status("dead", journal_dir=str(tmp_path / "j"))
    assert st.state == "interrupted" and st.bytes_done == 10 and st.eta_s is None


def start_slow(tmp_path, name, size_kib=2048):
    make_source(tmp_path / "src", {"big": size_kib * KiB, "small": 3 * KiB})
    env = {**os.environ, "EBAS_TRANSFER_DIR": str(tmp_path / "j")}
    proc = subprocess.Popen([EBAS_BIN, "transfer", str(tmp_path / "src"), str(tmp_path / "dst"), "--name", name,
                             "--bwlimit", "512KiB/s", "--part-size", "128KiB", "--streams", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            st = jobs.status(name, journal_dir=str(tmp_path / "j"))
            if st.state == "running" and st.bytes_done >= 512 * KiB:
                return proc
        except UsageError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the transfer did not get going")


def test_resume_after_kill_9_sends_only_what_is_missing(tmp_path):
    proc = start_slow(tmp_path, "killed")
    proc.kill()  # SIGKILL: no clean-up at all
    proc.wait()
    st = jobs.status("killed", journal_dir=str(tmp_path / "j"))
    assert st.state == "interrupted"
    done_before = st.bytes_done
    res = jobs.resume("killed", journal_dir=str(tmp_path / "j"), bwlimit="64MiB/s")
    assert res.ok and tree(tmp_path / "dst") == tree(tmp_path / "src")
    # what was stored before the kill is not sent again (at most the part in flight)
    assert res.bytes_sent <= res.bytes_total - done_before + 128 * KiB
    assert res.parts_reused >= 4
    assert FileStore(tmp_path / "dst").uploads() == []


def test_cancel_of_a_stopped_job_discards_its_upload(tmp_path):
    proc = start_slow(tmp_path, "stopped")
    proc.kill()
    proc.wait()
    assert FileStore(tmp_path / "dst").uploads() != []
    st = jobs.cancel("stopped", journal_dir=str(tmp_path / "j"))
    assert st.state == "cancelled"
    assert FileStore(tmp_path / "dst").uploads() == []
    assert not (tmp_path / "dst" / "big").exists()


def test_resume_through_the_cli(tmp_path, cli_env):
    proc = start_slow(tmp_path, "clijob")
    proc.kill()
    proc.wait()
    out = cli_env("transfer", "resume", "clijob", "--bwlimit", "64MiB/s")
    assert "transfer clijob: done" in out and "part(s) reused" in out
    assert tree(tmp_path / "dst") == tree(tmp_path / "src")


def test_cli_bad_timetable_is_a_usage_error_naming_the_rule(tmp_path, cli_env):
    make_source(tmp_path / "src", {"a": 1})
    with pytest.raises(UsageError, match="Mon-Fry"):
        cli_env("transfer", str(tmp_path / "src"), str(tmp_path / "dst"), "--bwlimit", "Mon-Fry 08:00-18:00 1MiB/s")
    with pytest.raises(UsageError, match="never applies"):
        cli_env("transfer", str(tmp_path / "src"), str(tmp_path / "dst"), "--bwlimit", "* 1MiB/s; Mon 2MiB/s")


def test_cli_bad_timetable_exit_code(tmp_path):
    make_source(tmp_path / "src", {"a": 1})
    env = {**os.environ, "EBAS_TRANSFER_DIR": str(tmp_path / "j")}
    out = subprocess.run([EBAS_BIN, "transfer", str(tmp_path / "src"), str(tmp_path / "dst"), "--window", "22:00-25:00"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "22:00-25:00" in out.stderr
