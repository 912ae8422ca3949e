"""Runners for the backup tools under test, behind one small interface.

Every tool is driven as a subprocess, exactly as a user would run it:

    tool = Restic(workdir / "restic-repo")
    tool.init()
    r = tool.backup(src)            # {"seconds", "peak_rss_kb", "cpu_seconds", "snapshot_id", "summary"}
    tool.restore(r["snapshot_id"], target)   # -> seconds
    tool.stored_bytes()             # apparent size of the repository directory
    tool.snapshots()                # [{"id", "time"}, ...]

Wall time is ``time.perf_counter`` around the child; peak RSS and CPU time come
from GNU ``/usr/bin/time`` (``%M``: the child's own peak, and the largest of the
descendants it waited for), falling back to ``os.wait4``'s rusage, which is
polluted by the harness's own RSS (see ``run``).  ``stored_bytes`` is the
same measure for every tool: the sum of apparent file sizes under the
repository directory (caches live outside it).

``tar_read_seconds(src)`` is the baseline: ``tar cf - SRC | cat >/dev/null``.
GNU tar recognises an archive on /dev/null -- also when stdout is redirected
there -- and then skips reading file data; through a pipe it must read it all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PASSWORD = "ebas-bench-password"
VENV_EBAS = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "ebas"


class ToolError(RuntimeError):
    """A tool exited non-zero or printed something we could not parse."""


@dataclass
class Run:
    cmd: list[str]
    returncode: int
    seconds: float
    peak_rss_kb: int
    cpu_seconds: float
    stdout: str
    stderr: str

    def check(self) -> "Run":
        if self.returncode != 0:
            raise ToolError(f"{' '.join(self.cmd)} exited {self.returncode}\n"
                            f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}")
        return self


def _gnu_time() -> str | None:
    """/usr/bin/time if it is GNU time (it reports the child's own peak RSS)."""
    path = shutil.which("time", path="/usr/bin:/bin")
    if not path:
        return None
    try:
        r = subprocess.run([path, "-f", "%M", "-o", os.devnull, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if r.returncode == 0 else None


TIME_BIN = _gnu_time()


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None) -> Run:
    """Run cmd to completion; wall time, peak RSS and CPU time of the child.

    Peak RSS comes from GNU time when present.  ``os.wait4``'s ru_maxrss is only
    a fallback: Python starts children with vfork, and Linux carries the
    parent's RSS high-water mark across the exec, so wait4 reports at least the
    harness's own RSS (300 MiB for ``true`` when the harness holds 300 MiB).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", prefix="bench-time-") as tf:
        argv = [TIME_BIN, "-f", "%M %U %S", "-o", tf.name, "--", *cmd] if TIME_BIN else list(cmd)
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd)
        _pid, status, ru = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        rss_kb, cpu = ru.ru_maxrss, ru.ru_utime + ru.ru_stime
        if TIME_BIN:
            lines = tf.read().strip().splitlines()
            try:
                m, u, s = lines[-1].split()
                rss_kb, cpu = int(m), float(u) + float(s)
            except (IndexError, ValueError):
                pass  # killed by a signal before time could report
        out.seek(0)
        err.seek(0)
        return Run(cmd=[str(c) for c in cmd], returncode=p.returncode, seconds=seconds,
                   peak_rss_kb=rss_kb, cpu_seconds=cpu,
                   stdout=out.read().decode(errors="replace"), stderr=err.read().decode(errors="replace"))


def apparent_size(path: str | os.PathLike) -> int:
    """Sum of apparent sizes of the regular files under path (like du -sb, without dirs)."""
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_size
    return total


def tar_read_seconds(src: str | os.PathLike) -> float:
    """Seconds for ``tar cf - SRC | cat >/dev/null``: reading every byte of src."""
    src = Path(src).resolve()
    cmd = ["bash", "-c", 'set -o pipefail; tar -C "$1" -cf - "$2" | cat >/dev/null',
           "tar-read", str(src.parent), src.name]
    return run(cmd).check().seconds


def _json_objects(text: str) -> list:
    """JSON values in text: the whole of it, or one per line (restic streams lines)."""
    text = text.strip()
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line[:1] in "{[":
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


@dataclass
class Tool:
    """Common behaviour; subclasses supply the command lines."""

    repo: Path
    name: str = "tool"
    password: str = DEFAULT_PASSWORD
    extra_env: dict[str, str] = field(default_factory=dict)
    last: Run | None = None

    def __post_init__(self) -> None:
        self.repo = Path(self.repo).resolve()

    # -- interface ------------------------------------------------------------------

    def init(self) -> None:
        raise NotImplementedError

    def backup(self, src: str | os.PathLike) -> dict:
        raise NotImplementedError

    def restore(self, snapshot: str, target: str | os.PathLike) -> float:
        raise NotImplementedError

    def snapshots(self) -> list[dict]:
        raise NotImplementedError

    def stats(self) -> dict:
        """The tool's own statistics (for the record; not used for reduction)."""
        return {}

    def chunk_count(self) -> int | None:
        return None

    def version(self) -> str:
        return ""

    def stored_bytes(self) -> int:
        return apparent_size(self.repo)

    def restored_root(self, target: str | os.PathLike, src: str | os.PathLike) -> Path:
        """Where a restore of src into target put src's contents."""
        target, src = Path(target), Path(src).resolve()
        for cand in (target / str(src).lstrip("/"), target / src.name, target):
            if cand.is_dir():
                return cand
        return target

    # -- helpers ----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return os.environ | self.extra_env

    def _run(self, cmd: list[str], cwd: str | os.PathLike | None = None) -> Run:
        self.last = run(cmd, env=self.env(), cwd=cwd).check()
        return self.last

    def _timed(self, r: Run, snapshot_id: str | None, summary: dict) -> dict:
        return {"seconds": r.seconds, "peak_rss_kb": r.peak_rss_kb, "cpu_seconds": r.cpu_seconds,
                "snapshot_id": snapshot_id, "summary": summary}


@dataclass
class Ebas(Tool):
    """ebas through its CLI (contract: see bench/README.md)."""

    name: str = "ebas"
    ebas_cmd: list[str] = field(default_factory=lambda: [str(VENV_EBAS)])
    chunker: dict[str, int] | None = None  # {"min": .., "avg": .., "max": ..} passed to init

    def env(self) -> dict[str, str]:
        return os.environ | {"EBAS_PASSWORD": os.environ.get("EBAS_PASSWORD", self.password)} | self.extra_env

    def _cmd(self, *args: str) -> list[str]:
        return [*self.ebas_cmd, "--repo", str(self.repo), *args]

    def init(self) -> None:
        self.repo.parent.mkdir(parents=True, exist_ok=True)
        args = ["init"]
        for k, v in (self.chunker or {}).items():
            args += [f"--chunker-{k}", str(v)]
        self._run(self._cmd(*args))

    def backup(self, src: str | os.PathLike) -> dict:
        r = self._run(self._cmd("backup", str(Path(src).resolve()), "--json"))
        objs = [o for o in _json_objects(r.stdout) if isinstance(o, dict)]
        if not objs:
            raise ToolError(f"ebas backup --json printed no JSON object: {r.stdout[-500:]!r}")
        summary = objs[-1]
        snap = summary.get("snapshot_id") or summary.get("id") or summary.get("snapshot")
        if not snap:
            raise ToolError(f"ebas backup --json has no snapshot_id: {summary}")
        return self._timed(r, str(snap), summary)

    def restore(self, snapshot: str, target: str | os.PathLike) -> float:
        return self._run(self._cmd("restore", snapshot, "--target", str(target))).seconds

    def snapshots(self) -> list[dict]:
        objs = _json_objects(self._run(self._cmd("snapshots", "--json")).stdout)
        snaps = objs[0] if len(objs) == 1 and isinstance(objs[0], list) else objs
        if isinstance(snaps, dict):  # tolerate {"snapshots": [...]}
            snaps = snaps.get("snapshots", [])
        return [{"id": s.get("id") or s.get("snapshot_id"), "time": s.get("time")} | s for s in snaps]

    def stats(self) -> dict:
        objs = _json_objects(self._run(self._cmd("stats", "--json")).stdout)
        return objs[-1] if objs and isinstance(objs[-1], dict) else {}

    def chunk_count(self) -> int | None:
        n = self.stats().get("chunks")
        return int(n) if n is not None else None

    def version(self) -> str:
        r = run([*self.ebas_cmd, "--version"], env=self.env())
        return (r.stdout or r.stderr).strip().splitlines()[0] if r.returncode == 0 and (r.stdout or r.stderr).strip() else ""


@dataclass
class Restic(Tool):
    """restic with its defaults (repository v2, compression auto, cache kept beside the repo)."""

    name: str = "restic"
    restic_bin: str = "restic"

    def env(self) -> dict[str, str]:
        return os.environ | {"RESTIC_PASSWORD": os.environ.get("RESTIC_PASSWORD", self.password),
                             "RESTIC_CACHE_DIR": str(self.repo.parent / f"{self.repo.name}.cache")} | self.extra_env

    def _cmd(self, *args: str) -> list[str]:
        return [self.restic_bin, "-r", str(self.repo), *args]

    def init(self) -> None:
        self.repo.parent.mkdir(parents=True, exist_ok=True)
        self._run(self._cmd("init"))

    def backup(self, src: str | os.PathLike) -> dict:
        r = self._run(self._cmd("backup", str(Path(src).resolve()), "--json", "--host", "bench"))
        summary = next((o for o in reversed(_json_objects(r.stdout))
                        if isinstance(o, dict) and o.get("message_type") == "summary"), None)
        if summary is None:
            raise ToolError(f"restic backup printed no summary: {r.stdout[-500:]!r}")
        return self._timed(r, summary["snapshot_id"], summary)

    def restore(self, snapshot: str, target: str | os.PathLike) -> float:
        return self._run(self._cmd("restore", snapshot, "--target", str(target))).seconds

    def snapshots(self) -> list[dict]:
        objs = _json_objects(self._run(self._cmd("snapshots", "--json")).stdout)
        return [{"id": s["id"], "time": s["time"]} for s in (objs[0] if objs else [])]

    def stats(self) -> dict:
        objs = _json_objects(self._run(self._cmd("stats", "--mode", "raw-data", "--json")).stdout)
        return objs[-1] if objs else {}

    def chunk_count(self) -> int | None:
        n = self.stats().get("total_blob_count")
        return int(n) if n is not None else None

    def version(self) -> str:
        return run([self.restic_bin, "version"]).stdout.strip()


@dataclass
class Borg(Tool):
    """borg 1.2 with zstd,3 compression and repokey-blake2 encryption."""

    name: str = "borg"
    borg_bin: str = "borg"
    compression: str = "zstd,3"
    _n: int = 0

    def env(self) -> dict[str, str]:
        base = self.repo.parent / f"{self.repo.name}.borghome"
        return os.environ | {
            "BORG_PASSPHRASE": os.environ.get("BORG_PASSPHRASE", self.password),
            "BORG_BASE_DIR": str(base), "BORG_CACHE_DIR": str(base / "cache"),
            "BORG_CONFIG_DIR": str(base / "config"), "BORG_SECURITY_DIR": str(base / "security"),
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        } | self.extra_env

    def init(self) -> None:
        self.repo.parent.mkdir(parents=True, exist_ok=True)
        self._run([self.borg_bin, "init", "--encryption", "repokey-blake2", str(self.repo)])

    def backup(self, src: str | os.PathLike) -> dict:
        self._n += 1
        name = f"gen-{self._n:04d}"
        r = self._run([self.borg_bin, "create", "--json", "--compression", self.compression,
                       f"{self.repo}::{name}", str(Path(src).resolve())])
        objs = _json_objects(r.stdout)
        return self._timed(r, name, objs[-1] if objs else {})

    def restore(self, snapshot: str, target: str | os.PathLike) -> float:
        if snapshot == "latest":
            snapshot = self.snapshots()[-1]["id"]
        Path(target).mkdir(parents=True, exist_ok=True)
        return self._run([self.borg_bin, "extract", f"{self.repo}::{snapshot}"], cwd=target).seconds

    def snapshots(self) -> list[dict]:
        objs = _json_objects(self._run([self.borg_bin, "list", "--json", str(self.repo)]).stdout)
        return [{"id": a["name"], "time": a["time"]} for a in (objs[0]["archives"] if objs else [])]

    def stats(self) -> dict:
        objs = _json_objects(self._run([self.borg_bin, "info", "--json", str(self.repo)]).stdout)
        return objs[0].get("cache", {}).get("stats", {}) if objs else {}

    def chunk_count(self) -> int | None:
        n = self.stats().get("total_unique_chunks")
        return int(n) if n is not None else None

    def version(self) -> str:
        return run([self.borg_bin, "--version"]).stdout.strip()


def make_tool(name: str, repo: Path, ebas_cmd: list[str] | None = None) -> Tool:
    if name == "ebas":
        return Ebas(repo, ebas_cmd=ebas_cmd or [str(VENV_EBAS)])
    if name == "restic":
        return Restic(repo)
    if name == "borg":
        return Borg(repo)
    raise ValueError(f"unknown tool {name!r} (ebas, restic, borg)")


def available(name: str, ebas_cmd: list[str] | None = None) -> bool:
    if name == "ebas":
        cmd = ebas_cmd or [str(VENV_EBAS)]
        return (Path(cmd[0]).exists() or shutil.which(cmd[0]) is not None) and \
            run([*cmd, "--help"]).returncode == 0
    return shutil.which(name) is not None


def remove_tree(path: str | os.PathLike) -> None:
    shutil.rmtree(path, ignore_errors=True)
