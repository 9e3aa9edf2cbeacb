#!/usr/bin/python3
"""CallSids for bench/hashflood: `sids.py collide N BITS` prints N distinct
CallSids whose crc32 agree in the low BITS bits (what an attacker who knows
the index hash is an unkeyed crc32 would send: they all land in one probe
sequence); `sids.py random N` prints N random ones.

crc32 of messages of one length is affine over GF(2), so the CallSids are
built, not searched for: "CA" + 32 digits from 0-7 (3 free bits each) is
the base plus a sum of 96 bit flips; the flips whose crc32 differences
cancel in the low BITS bits form a kernel of dimension >= 96 - BITS, and
any sum of kernel vectors collides with the base."""

import random
import sys
import zlib

BASE = b"CA" + b"0" * 32


def crc(m):
    return zlib.crc32(m) & 0xffffffff


def flips():
    """(position, bit) pairs and each flip's crc32 difference."""
    base = crc(BASE)
    out = []
    for pos in range(2, 34):
        for bit in range(3):
            m = bytearray(BASE)
            m[pos] ^= 1 << bit
            out.append(((pos, bit), crc(bytes(m)) ^ base))
    return out


def kernel(bits):
    """A basis of the flip sets (as 96-bit masks) whose differences cancel
    in the low `bits` bits."""
    fl = flips()
    mask = (1 << bits) - 1
    rows = [(d & mask, 1 << i) for i, (_, d) in enumerate(fl)]
    basis = []          # reduced rows: (value, combination), pivot bit
    kern = []
    for val, comb in rows:
        for pv, (bv, bc) in basis:
            if val >> pv & 1:
                val ^= bv
                comb ^= bc
        if val == 0:
            kern.append(comb)
        else:
            basis.append((val.bit_length() - 1, (val, comb)))
    return fl, kern


def collide(n, bits):
    fl, kern = kernel(bits)
    rnd = random.Random(n * 1000 + bits)
    seen = set()
    while len(seen) < n:
        comb = 0
        for k in kern:
            if rnd.getrandbits(1):
                comb ^= k
        m = bytearray(BASE)
        for i, ((pos, bit), _) in enumerate(fl):
            if comb >> i & 1:
                m[pos] ^= 1 << bit
        sid = bytes(m)
        if sid in seen:
            continue
        assert crc(sid) & ((1 << bits) - 1) == crc(BASE) & ((1 << bits) - 1)
        seen.add(sid)
        print(sid.decode())


def rand(n):
    rnd = random.Random(n)
    for _ in range(n):
        print("CA%032x" % rnd.getrandbits(128))


if __name__ == "__main__":
    if sys.argv[1] == "collide":
        collide(int(sys.argv[2]), int(sys.argv[3]))
    else:
        rand(int(sys.argv[2]))
