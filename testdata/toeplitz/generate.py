"""Generate the Toeplitz known-answer vectors in this directory (``vectors.json``).

Run from the repository root:  ``python testdata/toeplitz/generate.py``

Deliberately independent of diqkd and numpy: inputs and seeds come from Python's
``random.Random(<case index>)`` and the hash is the naive definition in plain Python,

    T[i, j] = seed[(i - j) mod (n + m - 1)],    key[i] = sum_j T[i, j] * x[j] mod 2

(the randextract / cryptomite layout), and for the modified (Hayashi-Tsurumaru) family

    key = [T' | I_m] x,   T'[i, j] = seed[(i - j) mod (n - 1)]   (m x (n - m), n - 1 seed bits;
                                                                   no seed at all when m = n).

Bit strings are stored as hex of the bytes packed MSB first (like ``numpy.packbits``), zero-padded
to whole bytes, with the bit length stored next to them. The output is deterministic: rerunning
the script must reproduce ``vectors.json`` byte for byte.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SHAPES = [  # (n, m)
    (1, 0),
    (1, 1),
    (2, 1),
    (2, 2),
    (3, 1),
    (5, 3),
    (8, 8),
    (8, 4),
    (9, 9),
    (13, 7),
    (16, 1),
    (31, 17),
    (64, 32),
    (100, 1),
    (100, 99),
    (127, 64),
    (257, 128),
    (500, 250),
    (1000, 500),
    (1031, 1031),
    (2048, 1024),
    (3001, 1200),
]
MODIFIED_SHAPES = [(2, 1), (5, 3), (8, 8), (13, 7), (64, 32), (257, 128), (1000, 500)]


def pack_hex(bits: list[int]) -> str:
    out = bytearray()
    for k in range(0, len(bits), 8):
        chunk = bits[k : k + 8] + [0] * (8 - len(bits[k : k + 8]))
        byte = 0
        for b in chunk:
            byte = (byte << 1) | b
        out.append(byte)
    return out.hex()


def toeplitz(x: list[int], m: int, seed: list[int]) -> list[int]:
    n = len(x)
    length = n + m - 1
    return [sum(seed[(i - j) % length] & x[j] for j in range(n)) % 2 for i in range(m)]


def modified(x: list[int], m: int, seed: list[int]) -> list[int]:
    n = len(x)
    k = n - m
    head = toeplitz(x[:k], m, seed) if k > 0 else [0] * m
    return [a ^ b for a, b in zip(head, x[k:], strict=True)]


def main() -> None:
    cases = []
    for idx, (n, m) in enumerate(SHAPES):
        rnd = random.Random(idx)
        x = [rnd.getrandbits(1) for _ in range(n)]
        seed = [rnd.getrandbits(1) for _ in range(max(n + m - 1, 0))]
        y = toeplitz(x, m, seed)
        cases.append(_case("toeplitz", n, m, x, seed, y))
    for idx, (n, m) in enumerate(MODIFIED_SHAPES):
        rnd = random.Random(1000 + idx)
        x = [rnd.getrandbits(1) for _ in range(n)]
        seed = [rnd.getrandbits(1) for _ in range(n - 1 if n > m else 0)]
        cases.append(_case("modified-toeplitz", n, m, x, seed, modified(x, m, seed)))
    doc = {
        "description": "Toeplitz hash known-answer vectors (naive product), see generate.py",
        "layout": "T[i, j] = seed[(i - j) mod (n + m - 1)]",
        "layout_name": "randextract",
        "modified_layout": "[T' | I_m], T'[i, j] = seed[(i - j) mod (n - 1)]",
        "packing": "hex of bytes, bits MSB first, last byte zero-padded",
        "cases": cases,
    }
    path = Path(__file__).with_name("vectors.json")
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {path}")


def _case(family, n, m, x, seed, y):
    return {
        "family": family,
        "n": n,
        "m": m,
        "seed_bits": len(seed),
        "input_hex": pack_hex(x),
        "seed_hex": pack_hex(seed),
        "output_hex": pack_hex(y),
    }


if __name__ == "__main__":
    main()
