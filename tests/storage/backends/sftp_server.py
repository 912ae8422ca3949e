"""A real SFTP server for tests: asyncssh on 127.0.0.1, chrooted to a directory.

Runs in a background thread of the test process (``SFTPTestServer(...).start()``) or
as its own process (``python sftp_server.py --root DIR --keys DIR``, printing its port
on stdout) for benchmarks, where sharing the GIL with the client would distort
figures. Key-based authentication only; the user ``appendonly`` may write but the
server refuses its removes (append-only credentials).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from pathlib import Path

import asyncssh

APPEND_ONLY_USER = "appendonly"


def make_keys(keydir: Path) -> dict[str, Path]:
    """Host key, an authorised client key and a stranger's key, in OpenSSH format."""
    keydir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label in ("host", "client", "stranger"):
        path = keydir / f"{label}_ed25519"
        if not path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519")
            path.write_bytes(key.export_private_key("openssh"))
            path.chmod(0o600)
            (keydir / f"{label}_ed25519.pub").write_bytes(key.export_public_key("openssh"))
        paths[label] = path
    return paths


class _ChrootSFTP(asyncssh.SFTPServer):
    def __init__(self, chan, root: str):
        super().__init__(chan, chroot=root.encode())
        self._user = chan.get_extra_info("username")

    def remove(self, path: bytes) -> None:
        if self._user == APPEND_ONLY_USER:
            raise asyncssh.SFTPPermissionDenied("removes are refused for append-only credentials")
        return super().remove(path)


class SFTPTestServer:
    """asyncssh SFTP server on 127.0.0.1:``port`` (0 = a free port) serving ``root``."""

    def __init__(self, root: Path, keydir: Path, port: int = 0):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.keys = make_keys(Path(keydir))
        self.port = port
        self.loop = asyncio.new_event_loop()
        self._server = None
        self._thread: threading.Thread | None = None

    async def _listen(self):
        host_key = asyncssh.read_private_key(str(self.keys["host"]))
        authorized = asyncssh.import_authorized_keys(self.keys["client"].with_suffix(".pub").read_text())
        root = str(self.root)
        self._server = await asyncssh.listen(
            "127.0.0.1", self.port, server_host_keys=[host_key], authorized_client_keys=authorized,
            sftp_factory=lambda chan: _ChrootSFTP(chan, root), allow_scp=False, password_auth=False,
            kbdint_auth=False)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> "SFTPTestServer":
        ready = threading.Event()
        failure: list[BaseException] = []

        def run():
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._listen())
            except BaseException as exc:  # noqa: BLE001 - reported to the starter
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="sftp-test-server")
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the SFTP test server did not start within 30 s")
        if failure:
            raise failure[0]
        return self

    def known_hosts_line(self, port: int | None = None) -> str:
        pub = self.keys["host"].with_suffix(".pub").read_text().split()
        return f"[127.0.0.1]:{port or self.port} {pub[0]} {pub[1]}\n"

    def stop(self) -> None:
        if self._server is None:
            return

        async def shutdown():
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._server = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--keys", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = SFTPTestServer(Path(args.root), Path(args.keys), args.port).start()
    print(server.port, flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        pass
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
