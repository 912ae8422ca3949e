"""Keyed chunk boundaries: a secret byte permutation in front of FastCDC's gear hash.

FastCDC cuts where a rolling gear hash ``h = (h >> 1) + GEAR[byte]`` has its low bits
zero. With the package's public ``GEAR`` table, anyone can compute where a known file is
cut, so the sizes of stored chunks can reveal that a repository holds that file. The
``fastcdc`` package (1.7.0) compiles its table into the C core and offers no seed, so
ebas keeps that fast core and feeds it ``data.translate(S)``, where ``S`` is a secret
permutation of the 256 byte values derived from the repository's id key. That is the
gear hash with the keyed table ``GEAR'[b] = GEAR[S[b]]``: boundaries depend on the key,
and the chunks themselves are cut from the original bytes.

Strength, honestly: the table's 256 values are public and only their assignment to byte
values is secret (256! ~ 2**1684 tables, against borg's 32-bit seed). Like every keyed
CDC (borg's seeded buzhash, restic's random polynomial), it hides boundaries from someone
who only sees chunk sizes of files they know; an attacker who can get chosen files backed
up and watch the sizes may learn the permutation (published chunking attacks recover
borg's and restic's parameters the same way). Cost: one ``bytes.translate`` pass (a C
loop) and one buffer copy per read buffer; see bench/bench_chunking.py.
"""

from __future__ import annotations

import blake3

_DOMAIN = b"ebas gear permutation v1"


def gear_permutation(seed: bytes) -> bytes:
    """A 256-byte translation table (a permutation of 0..255) derived from ``seed``.

    Deterministic (same seed, same table) and uniform: a Fisher-Yates shuffle driven by
    keyed BLAKE3 output with rejection sampling (no modulo bias).
    """
    if len(seed) != 32:
        raise ValueError("the chunker seed must be 32 bytes")
    stream = blake3.blake3(_DOMAIN, key=seed).digest(length=4096)
    pos = 0
    table = list(range(256))
    for i in range(255, 0, -1):
        bound = i + 1
        limit = 256 - 256 % bound  # accept bytes below the largest multiple of bound
        while True:
            if pos >= len(stream):  # practically unreachable (needs > 3,800 rejections)
                stream += blake3.blake3(_DOMAIN + stream[-32:], key=seed).digest(length=4096)
            r = stream[pos]
            pos += 1
            if r < limit:
                break
        j = r % bound
        table[i], table[j] = table[j], table[i]
    return bytes(table)
