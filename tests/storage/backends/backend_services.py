"""Start and stop the real services the backend tests talk to, on 127.0.0.1 only.

Each service is a child process started on a free port, polled for readiness every
50 ms for up to 30 s, and stopped by its PID. ``require`` turns a missing program
into a pytest skip on a developer machine, and into a failure under CI (``CI`` set),
where scripts/deps-cloud.sh must have installed everything.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NODE_BIN = REPO / "tests" / "services" / "node_modules" / ".bin"
READY_TIMEOUT = 30.0
POLL = 0.05


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require(ok: bool, reason: str) -> None:
    """Skip (developer machine) or fail (CI) when a service program is missing."""
    if ok:
        return
    message = f"{reason}; run 'bash scripts/deps-cloud.sh' to install the test services"
    if in_ci():
        pytest.fail(f"CI must not skip backend tests: {message}", pytrace=False)
    pytest.skip(message)


def require_module(name: str):
    """Import ``name`` or skip (developer machine) / fail (CI)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(False, f"Python package for {name} is missing ({exc}); install ebas[test]")


def venv_program(name: str) -> str | None:
    """A console script installed next to this Python, or on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what: str, timeout: float = READY_TIMEOUT, proc: subprocess.Popen | None = None) -> float:
    """Poll ``check()`` every 50 ms until it is true; return the seconds it took."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it was ready")
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{what} was not ready after {timeout:.0f} s")
        time.sleep(POLL)


def http_answers(url: str, ok_only: bool = False) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return not ok_only or resp.status < 400
    except urllib.error.HTTPError:
        return not ok_only
    except OSError:
        return False


class Service:
    """A child process serving on ``port``; ``stop()`` ends it by PID."""

    def __init__(self, name: str, argv: list[str], port: int, ready, *, env: dict | None = None,
                 log: Path | None = None):
        self.name, self.port = name, port
        self.log_path = log
        out = open(log, "wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        if log:
            out.close()
        try:
            self.ready_seconds = wait_until(ready, name, proc=self.proc)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def start_moto(workdir: Path, *, auth_after: int | None = None) -> Service:
    """moto_server on a free port; ``auth_after=N`` enforces IAM after N unauthenticated calls."""
    program = venv_program("moto_server")
    require(program is not None, "moto_server is not installed (pip 'moto[s3]' flask flask-cors)")
    port = free_port()
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(auth_after)} if auth_after is not None else {}
    return Service("moto_server", [program, "-H", "127.0.0.1", "-p", str(port)], port,
                   lambda: http_answers(f"http://127.0.0.1:{port}/moto-api/", ok_only=True),
                   env=env, log=workdir / f"moto-{port}.log")


def start_azurite(workdir: Path) -> Service:
    program = NODE_BIN / "azurite-blob"
    require(program.exists(), f"azurite is not installed ({program} is missing; npm ci in tests/services)")
    port = free_port()
    location = workdir / f"azurite-{port}"
    location.mkdir(parents=True, exist_ok=True)
    argv = [str(program), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
            "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
    return Service("azurite-blob", argv, port, lambda: http_answers(f"http://127.0.0.1:{port}/"),
                   log=workdir / f"azurite-{port}.log")


def start_gcs(workdir: Path) -> Service:
    program = venv_program("gcp-storage-emulator")
    require(program is not None, "gcp-storage-emulator is not installed (pip gcp-storage-emulator)")
    port = free_port()
    argv = [program, "start", "-H", "127.0.0.1", "--port", str(port), "--in-memory", "-q"]
    return Service("gcp-storage-emulator", argv, port, lambda: http_answers(f"http://127.0.0.1:{port}/"),
                   log=workdir / f"gcs-{port}.log")


# ---------------------------------------------------------------------------- TCP relay
class Relay:
    """A TCP relay on 127.0.0.1 in front of ``target_port`` that misbehaves on command.

    * ``cut_upload_after(n)``: the next connection sending more than ``n`` bytes to the
      server is reset (RST) after ``n`` bytes: a connection reset mid upload.
    * ``cut_download_after(n)``: likewise for bytes coming back: a reset mid download.
    * ``storm(k, status, body)``: the next ``k`` HTTP requests are answered by the relay
      itself with ``status`` (e.g. 503 SlowDown) and never reach the server.
    * ``slow(seconds)``: every chunk from the server is held back ``seconds``.
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.up_cut: int | None = None
        self.up_across: int | None = None
        self.down_cut: int | None = None
        self.storm_left = 0
        self.storm_response = b""
        self.delay = 0.0
        self.cuts = 0
        self.stormed = 0
        self.stormed_requests: list[str] = []
        self.connections = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"relay-{self.port}").start()

    # -- programming
    def cut_upload_after(self, nbytes: int, *, across: bool = False) -> None:
        """Reset the connection carrying upload byte ``nbytes`` (of one connection, or
        counted ``across`` all connections from now on)."""
        with self.lock:
            self.up_cut = nbytes
            self.up_across = 0 if across else None

    def cut_download_after(self, nbytes: int) -> None:
        with self.lock:
            self.down_cut = nbytes

    def storm(self, count: int, status: str = "503 Slow Down", body: bytes = b"",
              content_type: str = "application/xml") -> None:
        head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n").encode()
        with self.lock:
            self.storm_left, self.storm_response = count, head + body

    def slow(self, seconds: float) -> None:
        with self.lock:
            self.delay = seconds

    def reset(self) -> None:
        with self.lock:
            self.up_cut = self.down_cut = None
            self.storm_left, self.delay = 0, 0.0

    def close(self) -> None:
        self._closed = True
        self.sock.close()

    # -- machinery
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self.lock:
            stormy = self.storm_left > 0
        if stormy:
            self._answer_storm(client)
            return
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            _reset(client)
            return
        self._pump(client, server)

    def _answer_storm(self, client: socket.socket) -> None:
        """Read one request (headers and declared body) and answer with the storm status."""
        try:
            client.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = 0
            expect = False
            for line in head.split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value.strip())
                if key.strip().lower() == b"expect":
                    expect = True
            if not expect:
                while len(rest) < length:
                    chunk = client.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
            with self.lock:
                self.storm_left -= 1
                self.stormed += 1
                self.stormed_requests.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                response = self.storm_response
            client.sendall(response)
            client.shutdown(socket.SHUT_WR)
            time.sleep(0.05)
        except OSError:
            pass
        finally:
            client.close()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        """Forward both ways from one thread (select), so a cut can reset both sockets at once."""
        sent = {"up": 0, "down": 0}
        peers = {client: (server, "up"), server: (client, "down")}
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [], 1.0)
                if self._closed:
                    break
                for src in readable:
                    dst, direction = peers[src]
                    chunk = src.recv(65536)
                    if not chunk:
                        return
                    with self.lock:
                        limit = self.up_cut if direction == "up" else self.down_cut
                        if direction == "up" and self.up_across is not None and limit is not None:
                            limit -= self.up_across - sent["up"]  # bytes sent before on other connections
                            self.up_across += len(chunk)
                        delay = self.delay if direction == "down" else 0.0
                        cut = limit is not None and sent[direction] + len(chunk) > limit
                        if cut:  # one-shot: this connection claims the cut
                            if direction == "up":
                                self.up_cut = self.up_across = None
                            else:
                                self.down_cut = None
                            self.cuts += 1
                    if cut:
                        dst.sendall(chunk[:limit - sent[direction]])
                        _reset(client)
                        _reset(server)
                        return
                    if delay:
                        time.sleep(delay)
                    dst.sendall(chunk)
                    sent[direction] += len(chunk)
        except OSError:
            pass
        finally:
            for sock in (client, server):
                try:
                    sock.close()
                except OSError:
                    pass


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees a connection reset, not an orderly end."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    except OSError:
        pass


# ---------------------------------------------------------------------------- helpers for tests
S3_KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
_seq = itertools.count()


def unique(tag: str = "t") -> str:
    """A name no other test uses (also across sessions sharing a service)."""
    return f"{tag}{next(_seq)}-{uuid.uuid4().hex[:8]}"


def s3_client(port: int, **keys):
    import boto3
    from botocore.config import Config

    creds = keys or S3_KEYS
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"],
                        config=Config(s3={"addressing_style": "path"}))


def s3_url(port: int, bucket: str, prefix: str, **query) -> str:
    q = "".join(f"&{k}={v}" for k, v in query.items())
    return f"s3://{bucket}/{prefix}?endpoint=http://127.0.0.1:{port}&path_style=1&region=us-east-1{q}"


def azure_connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")


def azure_url(port: int, container: str, prefix: str, **query) -> str:
    q = "".join(f"&{k}={v}" for k, v in query.items())
    return (f"azure://{AZURITE_ACCOUNT}/{container}/{prefix}"
            f"?endpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT}{q}")


def gcs_url(port: int, bucket: str, prefix: str, **query) -> str:
    q = "".join(f"&{k}={v}" for k, v in query.items())
    return f"gs://{bucket}/{prefix}?endpoint=http://127.0.0.1:{port}&anonymous=1&project=ebas-test{q}"


class SFTPEnv:
    """The running test SFTP server plus what a client needs to reach it."""

    def __init__(self, server, known_hosts):
        self.server, self.known_hosts = server, known_hosts
        self.port = server.port
        self.root = server.root
        self.key_file = str(server.keys["client"])
        self.stranger_key = str(server.keys["stranger"])

    def url(self, path: str, *, user: str = "backup", port: int | None = None, **query) -> str:
        q = "&".join(f"{k}={v}" for k, v in {"key_file": self.key_file, "known_hosts": self.known_hosts,
                                               **query}.items())
        return f"sftp://{user}@127.0.0.1:{port or self.port}/{path}?{q}"

    def trust_port(self, port: int) -> None:
        """Record the server's host key for another port (a relay in front of it)."""
        with open(self.known_hosts, "a") as f:
            f.write(self.server.known_hosts_line(port))
