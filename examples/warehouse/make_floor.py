"""Draws floor.png for the warehouse example: 25 m x 20 m at 5 cm per pixel.

White is free floor; black is walls and shelving. World x grows to the right from the left
edge, world y grows upwards from the bottom edge, so image row 0 is y = 20 m.
Run with `python3 make_floor.py` (standard library only) to regenerate the image.
"""
import struct
import zlib

SCALE = 0.05  # metres per pixel
WIDTH, HEIGHT = 500, 400


def blocked(x, y):
    """True when the point (x, y) in metres is a wall or a shelf."""
    if x < 0.3 or x > 24.7 or y < 0.3 or y > 19.7:
        return True
    # Three rows of shelving with aisles between them, and a gap on the left.
    for y0 in (6.0, 10.5, 15.0):
        if 5.5 <= x <= 21.0 and y0 <= y <= y0 + 1.2:
            return True
    # A pillar in the middle of the lower aisle.
    return 9.0 <= x <= 9.8 and 2.0 <= y <= 2.8


rows = []
for row in range(HEIGHT):
    y = (HEIGHT - row - 0.5) * SCALE
    line = bytearray([0])  # filter type: none
    for col in range(WIDTH):
        x = (col + 0.5) * SCALE
        line.append(0 if blocked(x, y) else 255)
    rows.append(bytes(line))

raw = zlib.compress(b"".join(rows), 9)


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 0, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
with open("floor.png", "wb") as f:
    f.write(png)
