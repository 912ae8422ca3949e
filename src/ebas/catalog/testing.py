"""A PostgreSQL server for tests and benchmarks: the one on 127.0.0.1:5432 if it answers,
else a throwaway cluster (initdb into a temporary directory owned by ``postgres``,
``pg_ctl start`` on a free port with ``fsync=off``), stopped and deleted afterwards.

    with PostgresServer.start() as server:
        url = server.create_database("ebas_test_123")
        ...
        server.drop_database("ebas_test_123")

Root cannot run PostgreSQL: as root the cluster is run as the ``postgres`` user through
``runuser``. Needs Debian's ``postgresql`` package (``scripts/deps-postgres.sh``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

READY_TIMEOUT = 30.0


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> str | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest installed version)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]) if
                  p.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


@dataclass
class PostgresServer:
    """A reachable server: ``admin_url`` connects as a superuser to the ``postgres`` database."""

    host: str
    port: int
    user: str = "postgres"
    workdir: str | None = None  # set when we started the cluster ourselves
    bindir: str | None = None

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def start(cls, host: str = "127.0.0.1", port: int = 5432) -> "PostgresServer":
        """Use a server already answering on ``host:port``, or start a throwaway one."""
        if _answers(host, port):
            return cls(host, port, user=os.environ.get("EBAS_PG_USER", "postgres"))
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found; run scripts/deps-postgres.sh")
        workdir = tempfile.mkdtemp(prefix="ebas-pg-")
        as_root = os.geteuid() == 0
        prefix: list[str] = []
        if as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(workdir, pw.pw_uid, pw.pw_gid)
            os.chmod(workdir, 0o700)
            prefix = ["runuser", "-u", "postgres", "--"]
        data, log = os.path.join(workdir, "data"), os.path.join(workdir, "log")
        port = _free_port()
        env = dict(os.environ, LC_ALL="C.UTF-8")
        subprocess.run(prefix + [os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                                 "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=workdir)
        opts = f"-h 127.0.0.1 -p {port} -k {workdir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(prefix + [os.path.join(bindir, "pg_ctl"), "-D", data, "-l", log, "-o", opts, "-w", "start"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=workdir)
        server = cls("127.0.0.1", port, workdir=workdir, bindir=bindir)
        server.wait_ready()
        return server

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if _answers(self.host, self.port):
                try:
                    import psycopg

                    psycopg.connect(self.admin_url, connect_timeout=2).close()
                    return
                except Exception:  # noqa: BLE001 - still starting
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL on {self.host}:{self.port} did not become ready")

    def stop(self) -> None:
        """Stop and delete the cluster if this object started it."""
        if not self.workdir:
            return
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + [os.path.join(self.bindir or "", "pg_ctl"), "-D", os.path.join(self.workdir, "data"),
                                 "-m", "immediate", "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    def __enter__(self) -> "PostgresServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ databases
    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
