"""A tiny PNG encoder (zlib + struct), so the offline provider draws real images without Pillow."""

import struct
import zlib


def png_encode(width: int, height: int, rows: list[bytes]) -> bytes:
    """Encode `height` rows of `width` RGB pixels (3 bytes each) as a PNG file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def gradient_rows(width: int, height: int, seed: bytes, start: int, stop: int) -> list[bytes]:
    """Rows `start`..`stop` of a gradient whose colours come from `seed` (deterministic)."""
    r0, g0, b0 = seed[0], seed[1], seed[2]
    rows = []
    for y in range(start, stop):
        row = bytearray()
        for x in range(width):
            row += bytes(((r0 + x) % 256, (g0 + y) % 256, (b0 + x + y) % 256))
        rows.append(bytes(row))
    return rows
