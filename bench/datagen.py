"""Seeded content generators for the benchmark data sets.

Everything here is a pure function of a numpy ``Generator`` (or of a seed), so a
data set is a deterministic function of its seed.  Speed matters more than
beauty: a GiB of content must come out in seconds, so text is assembled from
pre-built pools of lines picked at random (Zipf-weighted) and random bytes come
straight from the bit generator.

Content kinds and what they imitate:

``text``    source code, logs, CSV and prose; zstd-3 compresses it ~3-4x.
``binary``  photos, archives, video: incompressible random bytes.
``semi``    databases, PDFs, PCM audio: ~2x compressible (low-entropy bytes
            interleaved with random runs).
``zero``    zero bytes (VM images only).

Chunk-level duplication between files is deliberately negligible: a text file
is a random sequence of ~60-byte lines, so two files never share a run long
enough to form a common chunk.  Any dedup a tool finds comes from the
generations, not from the generator.
"""

from __future__ import annotations

import itertools
import operator

import numpy as np

TEXT_FLAVOURS = ("code", "log", "csv", "prose")
POOL_LINES = 1 << 15

_SYLLABLES = (
    "ka ro mi te su na lo ve di pa to re an el in or us ex al um "
    "ser vic con fig dat ba sto rage net work par se han dle que ry "
    "ac count in vo ice cli ent ord er pro duct re port tra ce"
).split()

_CODE_KEYWORDS = (
    "def return if else for while import from class self None True False "
    "try except raise with as yield lambda int str dict list len range"
).split()

_LOG_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR")

_CITIES = ("Berlin", "Paris", "London", "Madrid", "Rome", "Vienna", "Zurich",
           "Oslo", "Dublin", "Lisbon", "Prague", "Warsaw", "München", "Köln")


def rng_for(seed: int, *salt: int | str) -> np.random.Generator:
    """A generator seeded by (seed, *salt); strings are hashed stably."""
    words = [seed & 0xFFFFFFFF, seed >> 32]
    for s in salt:
        if isinstance(s, str):
            words.extend(s.encode())
        else:
            words.append(int(s) & 0xFFFFFFFF)
    return np.random.default_rng(np.random.SeedSequence(words))


def random_bytes(rng: np.random.Generator, n: int) -> bytes:
    """n incompressible bytes (about 1.4 GB/s)."""
    if n <= 0:
        return b""
    raw = rng.bit_generator.random_raw((n + 7) // 8)
    return raw.tobytes()[:n]


def semi_bytes(rng: np.random.Generator, n: int) -> bytes:
    """n bytes that zstd compresses about 2x.

    Alternating runs: random bytes, and bytes drawn from an 8-symbol alphabet
    (3 bits of entropy per byte), like database pages or uncompressed media.
    """
    if n <= 0:
        return b""
    alphabet = np.frombuffer(random_bytes(rng, 8), dtype=np.uint8)
    low = alphabet[rng.integers(0, 8, n, dtype=np.uint8)]
    out = low.tobytes()
    # overlay random runs on ~20% of the bytes, in 256..4096-byte pieces
    buf = bytearray(out)
    pos = 0
    while pos < n:
        run = int(rng.integers(256, 4096))
        if rng.random() < 0.2:
            end = min(n, pos + run)
            buf[pos:end] = random_bytes(rng, end - pos)
        pos += run
    return bytes(buf)


class TextSource:
    """Pools of realistic text lines, one pool per flavour, built from a seed.

    ``text(rng, n, flavour)`` returns n bytes of that flavour by joining lines
    picked from the pool with Zipf-like weights (a few lines are frequent, as
    boilerplate is in real files).
    """

    def __init__(self, seed: int, pool_lines: int = POOL_LINES) -> None:
        rng = rng_for(seed, "text-pools")
        self.words = _make_words(rng, 6000)
        self.word_weights = _zipf_cdf(len(self.words), 1.05)
        makers = {"code": self._code_line, "log": self._log_line,
                  "csv": self._csv_line, "prose": self._prose_line}
        self.pools: dict[str, list[bytes]] = {}
        for flavour in TEXT_FLAVOURS:
            frng = rng_for(seed, "pool", flavour)
            self.pools[flavour] = [makers[flavour](frng) for _ in range(pool_lines)]
        self.line_cdf = _zipf_cdf(pool_lines, 0.3)
        self.mean_len = {f: sum(map(len, p)) / len(p) for f, p in self.pools.items()}

    def text(self, rng: np.random.Generator, n: int, flavour: str = "prose") -> bytes:
        if n <= 0:
            return b""
        pool = self.pools[flavour]
        out: list[bytes] = []
        have = 0
        while have < n:
            k = int((n - have) / self.mean_len[flavour] * 1.05) + 2
            idx = np.searchsorted(self.line_cdf, rng.random(k)).tolist()
            piece = b"".join(operator.itemgetter(*idx)(pool))
            out.append(piece)
            have += len(piece)
        return b"".join(out)[:n]

    # -- line makers (only used to build the pools) ---------------------------

    def _pick(self, rng: np.random.Generator, k: int) -> list[str]:
        idx = np.searchsorted(self.word_weights, rng.random(k))
        return [self.words[i] for i in idx]

    def _code_line(self, rng: np.random.Generator) -> bytes:
        indent = "    " * int(rng.integers(0, 4))
        w = self._pick(rng, 4)
        kw = _CODE_KEYWORDS[int(rng.integers(0, len(_CODE_KEYWORDS)))]
        form = int(rng.integers(0, 6))
        if form == 0:
            line = f"{indent}def {w[0]}_{w[1]}(self, {w[2]}, {w[3]}=None):"
        elif form == 1:
            line = f"{indent}{w[0]} = {w[1]}.{w[2]}({w[3]}, {int(rng.integers(0, 1000))})"
        elif form == 2:
            line = f"{indent}if {w[0]} {kw} {w[1]}:"
        elif form == 3:
            line = f"{indent}# {' '.join(self._pick(rng, int(rng.integers(3, 10))))}"
        elif form == 4:
            line = f"{indent}return {w[0]}[{w[1]!r}]"
        else:
            line = f"{indent}self.{w[0]}_{w[1]} = {kw}"
        return (line + "\n").encode()

    def _log_line(self, rng: np.random.Generator) -> bytes:
        d, h, m, s, ms = (int(x) for x in rng.integers([1, 0, 0, 0, 0], [29, 24, 60, 60, 1000]))
        w = self._pick(rng, 5)
        lvl = _LOG_LEVELS[int(rng.integers(0, len(_LOG_LEVELS)))]
        line = (f"2024-03-{d:02d}T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z {lvl:5s} [{w[0]}-{int(rng.integers(0, 16))}] "
                f"{w[1]} {w[2]} {w[3]} id={int(rng.integers(0, 1 << 32)):08x} "
                f"path=/api/v1/{w[4]} status={(200, 200, 200, 201, 404, 500)[int(rng.integers(0, 6))]} "
                f"dur={int(rng.integers(1, 900))}ms")
        return (line + "\n").encode()

    def _csv_line(self, rng: np.random.Generator) -> bytes:
        w = self._pick(rng, 2)
        city = _CITIES[int(rng.integers(0, len(_CITIES)))]
        line = (f"{int(rng.integers(100000, 999999))},2023-{int(rng.integers(1, 13)):02d}-"
                f"{int(rng.integers(1, 29)):02d},{w[0].upper()}-{int(rng.integers(0, 9999)):04d},"
                f"{w[0]} {w[1]},{rng.random() * 1000:.2f},{int(rng.integers(1, 50))},{city}")
        return (line + "\n").encode()

    def _prose_line(self, rng: np.random.Generator) -> bytes:
        words = self._pick(rng, int(rng.integers(4, 16)))
        words[0] = words[0].capitalize()
        return (" ".join(words) + ".\n").encode()


def _make_words(rng: np.random.Generator, n: int) -> list[str]:
    seen: set[str] = set()
    words: list[str] = []
    for length in itertools.cycle((1, 2, 2, 3, 3, 4)):
        if len(words) >= n:
            break
        w = "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), length))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def _zipf_cdf(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf
