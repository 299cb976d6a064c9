#!/usr/bin/env python3
"""Draws icon.png, the 64x64 icon Cognigy.AI shows for the extension: a payment card
under a padlock, on the extension's blue. Standard library only; the output is the same
on every run (`python3 scripts/icon.py`)."""

import struct
import zlib
from pathlib import Path

SIZE = 64
BLUE = (29, 78, 137, 255)
WHITE = (255, 255, 255, 255)
STRIPE = (20, 40, 70, 255)
GOLD = (242, 183, 5, 255)
CLEAR = (0, 0, 0, 0)


def inside_rounded(x, y, left, top, right, bottom, radius):
    """Whether pixel centre (x, y) lies in the rounded rectangle."""
    cx = min(max(x, left + radius), right - radius)
    cy = min(max(y, top + radius), bottom - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def pixel(x, y):
    px, py = x + 0.5, y + 0.5
    colour = BLUE if inside_rounded(px, py, 0, 0, SIZE, SIZE, 12) else CLEAR
    # The card.
    if inside_rounded(px, py, 8, 22, 56, 54, 4):
        colour = WHITE
        if 28 <= py < 34:
            colour = STRIPE
        if 40 <= py < 44 and 14 <= px < 34:
            colour = STRIPE
    # The padlock: shackle (a ring's upper half) and body, over the card's top edge.
    ring = ((px - 32) ** 2 + (py - 18) ** 2) ** 0.5
    if 6 <= ring <= 9.5 and py <= 20:
        colour = GOLD
    if inside_rounded(px, py, 21, 18, 43, 36, 3):
        colour = GOLD
        if ((px - 32) ** 2 + (py - 25) ** 2) <= 6.5 or (31 <= px < 33 and 25 <= py < 31):
            colour = STRIPE
    return colour


def png(width, height, rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(c for p in row for c in p) for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    rows = [[pixel(x, y) for x in range(SIZE)] for y in range(SIZE)]
    out = Path(__file__).resolve().parent.parent / "icon.png"
    out.write_bytes(png(SIZE, SIZE, rows))
    print(f"wrote {out} ({out.stat().st_size} bytes)")
