"""The link emulator: rate, delay, shared bottleneck, cuts (real sockets on 127.0.0.1)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from ebas.testing.link import LinkEmulator

MiB = 1 << 20


class Sink:
    """A server that counts bytes received and answers b'pong' to b'ping'."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if data == b"ping":
                    c.sendall(b"pong")
                with self.lock:
                    self.received += len(data)

    def close(self):
        self.sock.close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def send(port, nbytes):
    with socket.create_connection(("127.0.0.1", port)) as c:
        blob = b"x" * 65536
        left = nbytes
        while left:
            n = min(left, len(blob))
            c.sendall(blob[:n])
            left -= n
        c.shutdown(socket.SHUT_WR)
        c.recv(1)  # wait for the server side to close


def test_rate_is_held(sink):
    with LinkEmulator(sink.port, rate=8 * MiB, queue=256 * 1024) as link:
        t0 = time.monotonic()
        send(link.port, 4 * MiB)
        elapsed = time.monotonic() - t0
    assert sink.received == 4 * MiB
    # never faster than the link; slower only by the relay's own overhead (loose: CI machines are busy)
    assert 0.95 * 0.5 <= elapsed <= 1.6 * 0.5, elapsed


def test_delay_sets_the_round_trip(sink):
    with LinkEmulator(sink.port, delay=0.05) as link, socket.create_connection(("127.0.0.1", link.port)) as c:
        rtts = []
        for _ in range(3):
            t0 = time.monotonic()
            c.sendall(b"ping")
            assert c.recv(4) == b"pong"
            rtts.append(time.monotonic() - t0)
    assert 0.1 <= min(rtts) <= 0.14, rtts


def test_one_bottleneck_shared_by_all_connections(sink):
    with LinkEmulator(sink.port, rate=8 * MiB, queue=256 * 1024) as link:
        t0 = time.monotonic()
        threads = [threading.Thread(target=send, args=(link.port, 2 * MiB)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        assert link.sent["up"] == 4 * MiB
    assert 0.95 * 0.5 <= elapsed <= 1.6 * 0.5, elapsed


def test_cut_resets_every_connection(sink):
    with LinkEmulator(sink.port, rate=1 * MiB) as link:
        c = socket.create_connection(("127.0.0.1", link.port))
        c.sendall(b"y" * 1000)
        time.sleep(0.1)
        assert link.cut() == 1
        with pytest.raises(OSError):
            for _ in range(100):
                c.sendall(b"z" * 65536)
                time.sleep(0.01)
            c.recv(1) or (_ for _ in ()).throw(ConnectionResetError())
        c.close()
        send(link.port, 1000)  # new connections work after a cut
        assert link.cuts == 1


def test_loss_costs_a_retransmission_time(sink):
    with LinkEmulator(sink.port, loss=1.0, rto=0.2) as link, socket.create_connection(("127.0.0.1", link.port)) as c:
        t0 = time.monotonic()
        c.sendall(b"ping")
        assert c.recv(4) == b"pong"
        assert time.monotonic() - t0 >= 0.4  # lost both ways
