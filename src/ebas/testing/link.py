"""A WAN link emulator for tests and benchmarks: a user-space TCP relay on 127.0.0.1.

``LinkEmulator(target_port, rate=..., delay=..., queue=..., loss=...)`` listens on a free
port of 127.0.0.1 and relays every connection to ``127.0.0.1:target_port`` through **one
bottleneck per direction shared by every connection** (like one WAN link):

* **rate** (bytes/s): packets (the chunks read from a socket, at most ``packet``
  bytes) leave the bottleneck one after another at this rate, first come first served
  across connections;
* **delay** (one way, seconds) plus uniform **jitter**: added after the bottleneck, so
  the round trip seen by TCP is about ``2 * delay`` plus queueing;
* **queue** (bytes): the bottleneck buffer. A relay cannot drop bytes of a TCP stream
  without corrupting it, so a full queue stops reading from the senders (their TCP
  windows fill, as behind a real full router buffer) and the queueing delay is
  ``queue / rate`` at most;
* **loss** (probability per packet): a lost packet is modelled by what it costs TCP, a
  retransmission time-out (``rto``, default ``max(0.2, 3 * 2 * delay)``) of extra
  delay for that packet, which holds back its connection (head-of-line blocking).

``cut()`` resets every open connection (RST on both sides), as a link that drops;
``stall(True)`` holds every packet until ``stall(False)``. ``sent`` counts the bytes
that crossed the bottleneck per direction (``"up"`` client to server, ``"down"``
back). Randomness (loss, jitter) comes from a seeded ``random.Random``.

Only the standard library; every thread is a daemon and ``close()`` stops them.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import random
import socket
import struct
import threading
import time


class _Conn:
    """One relayed connection: the client and server sockets and two output queues."""

    def __init__(self, emu: "LinkEmulator", client: socket.socket, server: socket.socket):
        self.emu, self.client, self.server = emu, client, server
        self.closed = False
        self.out = {"up": _Outbox(server, self), "down": _Outbox(client, self)}
        self.last_delivery = {"up": 0.0, "down": 0.0}

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.server):
            try:
                if reset:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for box in self.out.values():
            box.stop()


class _Outbox:
    """Writes delivered packets to one socket from its own thread (a slow reader only
    holds back its own connection)."""

    def __init__(self, sock: socket.socket, conn: _Conn):
        self.sock, self.conn = sock, conn
        self.q: collections.deque[bytes | None] = collections.deque()
        self.cv = threading.Condition()
        self.ended = False
        threading.Thread(target=self._run, daemon=True).start()

    def put(self, data: bytes) -> None:
        with self.cv:
            self.q.append(data)
            self.cv.notify()

    def stop(self) -> None:
        self.put(None)  # type: ignore[arg-type]

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.q:
                    self.cv.wait()
                data = self.q.popleft()
            if data is None:
                return
            if not data:  # end of stream from the other side
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                self.ended = True
                if all(box.ended for box in self.conn.out.values()):
                    self.conn.close()
                    return
                continue
            try:
                self.sock.sendall(data)
            except OSError:
                self.conn.close(reset=True)
                return


class _Direction:
    """The bottleneck of one direction: a FIFO queue served at ``rate``, then a delay line."""

    def __init__(self, emu: "LinkEmulator", name: str):
        self.emu, self.name = emu, name
        self.queue: collections.deque[tuple[_Conn, bytes]] = collections.deque()
        self.queued = 0
        self.cv = threading.Condition()
        self.line: list[tuple[float, int, _Conn, bytes]] = []  # (deliver at, seq, conn, data)
        self.line_cv = threading.Condition()
        self.seq = itertools.count()
        self.sent = 0
        threading.Thread(target=self._serve, daemon=True).start()
        threading.Thread(target=self._deliver, daemon=True).start()

    def enqueue(self, conn: _Conn, data: bytes) -> bool:
        """Queue a packet; blocks while the queue is full. False if the link closed."""
        with self.cv:
            while self.queued + len(data) > self.emu.queue and self.queued > 0 and not self.emu.closed:
                self.cv.wait(0.1)
                if conn.closed:
                    return False
            self.queue.append((conn, data))
            self.queued += len(data)
            self.cv.notify_all()
        return not self.emu.closed

    def _serve(self) -> None:
        free_at = time.monotonic()
        while not self.emu.closed:
            with self.cv:
                while (not self.queue or self.emu.stalled) and not self.emu.closed:
                    self.cv.wait(0.05)
                if self.emu.closed:
                    return
                conn, data = self.queue[0]
            now = time.monotonic()
            free_at = max(free_at, now) + (len(data) / self.emu.rate if self.emu.rate else 0.0)
            if free_at - now > 0.0005:
                time.sleep(free_at - now)
            with self.cv:
                self.queue.popleft()
                self.queued -= len(data)
                self.cv.notify_all()
            if conn.closed:
                continue
            self.sent += len(data)
            self.emu._note_sent(self.name, len(data))
            self._to_line(conn, data, free_at)

    def _to_line(self, conn: _Conn, data: bytes, t: float) -> None:
        emu = self.emu
        extra = 0.0
        with emu.rng_lock:
            if emu.jitter:
                extra += emu.rng.uniform(0, emu.jitter)
            if emu.loss and data and emu.rng.random() < emu.loss:
                extra += emu.rto
        at = max(t + emu.delay + extra, conn.last_delivery[self.name])  # a stream stays in order
        conn.last_delivery[self.name] = at
        with self.line_cv:
            heapq.heappush(self.line, (at, next(self.seq), conn, data))
            self.line_cv.notify()

    def end_of_stream(self, conn: _Conn) -> None:
        """The sender closed: pass the end on after the bytes queued before it."""
        self.enqueue(conn, b"")

    def _deliver(self) -> None:
        while not self.emu.closed:
            with self.line_cv:
                while not self.line and not self.emu.closed:
                    self.line_cv.wait(0.05)
                if self.emu.closed:
                    return
                at, _, conn, data = self.line[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self.line_cv.wait(min(wait, 0.05))
                    continue
                heapq.heappop(self.line)
            if not conn.closed:
                conn.out[self.name].put(data)


class LinkEmulator:
    """A shared-bottleneck TCP relay in front of ``127.0.0.1:target_port`` (see the module text).

    ``port`` is where clients connect. ``rate`` in bytes/s (0 or None: unlimited)."""

    def __init__(self, target_port: int, *, rate: float | None = None, delay: float = 0.0, jitter: float = 0.0,
                 queue: int = 256 * 1024, loss: float = 0.0, rto: float | None = None, packet: int = 64 * 1024,
                 seed: int = 0, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.rate = rate or 0.0
        self.delay, self.jitter, self.queue, self.loss, self.packet = delay, jitter, queue, loss, packet
        self.rto = rto if rto is not None else max(0.2, 6 * delay)
        self.rng, self.rng_lock = random.Random(seed), threading.Lock()
        self.closed = False
        self.stalled = False
        self.cuts = 0
        self.connections = 0
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self._sent = {"up": 0, "down": 0}
        self._samples: list[tuple[float, int]] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.dirs = {"up": _Direction(self, "up"), "down": _Direction(self, "down")}
        threading.Thread(target=self._accept, daemon=True).start()

    # ------------------------------------------------------------------ control
    def cut(self) -> int:
        """Reset every open connection (the link dropped); the number reset."""
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
            self.cuts += 1
        for c in conns:
            c.close(reset=True)
        return len(conns)

    def stall(self, on: bool = True) -> None:
        """Hold every packet at the bottleneck (``on``) or let them go again."""
        self.stalled = on

    def set_rate(self, rate: float | None) -> None:
        """Change the bottleneck rate (bytes/s; 0 or None unlimited)."""
        self.rate = rate or 0.0

    @property
    def sent(self) -> dict[str, int]:
        """Bytes that crossed the bottleneck, per direction."""
        with self._lock:
            return dict(self._sent)

    def _note_sent(self, direction: str, n: int) -> None:
        with self._lock:
            self._sent[direction] += n

    def close(self) -> None:
        """Stop accepting, reset every connection, stop the threads."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.cut()
        for d in self.dirs.values():
            with d.cv:
                d.cv.notify_all()

    def __enter__(self) -> "LinkEmulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ relaying
    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, client, server)
            with self._lock:
                self._conns.add(conn)
                self.connections += 1
            threading.Thread(target=self._pump, args=(conn, client, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(conn, server, "down"), daemon=True).start()

    def _pump(self, conn: _Conn, src: socket.socket, direction: str) -> None:
        d = self.dirs[direction]
        while not conn.closed:
            try:
                data = src.recv(self.packet)
            except OSError:
                break
            if not data:
                d.end_of_stream(conn)
                return
            if not d.enqueue(conn, data):
                break
        conn.close(reset=True)
        with self._lock:
            self._conns.discard(conn)
