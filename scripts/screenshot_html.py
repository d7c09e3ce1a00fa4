"""Screenshot an HTML page with headless Chromium and check that it shows coloured pixels.

    python scripts/screenshot_html.py PAGE.html OUT.png [--min-pixels N]

Prints the number of strongly coloured pixels (max(R,G,B) - min(R,G,B) >= 60: the token heat
map, not grey text) and exits 1 when there are fewer than N (default 500), 2 when Chromium is
missing or fails. Chromium runs offline-leaning flags and a fresh profile. Tests import
:func:`screenshot` and :func:`count_colored_pixels` from this file.
"""

import argparse
import os
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "install it with: apt-get update && apt-get install -y chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
MIN_CHROMA = 60


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    *,
    chromium: Path = CHROMIUM,
    window_size: tuple[int, int] = (1000, 700),
    timeout: float = 120.0,
) -> Path:
    """Render ``html_path`` in headless Chromium and write a PNG screenshot to ``png_path``.

    Raises:
        FileNotFoundError: Chromium is not installed at ``chromium``.
        RuntimeError: Chromium failed, timed out or wrote no screenshot.
    """
    page, png = Path(html_path).resolve(), Path(png_path).resolve()
    if not chromium.exists():
        raise FileNotFoundError(f"{chromium} not found; {INSTALL_HINT}")
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="heta-chromium-", ignore_cleanup_errors=True) as prof:
        cmd = [
            str(chromium),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={prof}",
            f"--screenshot={png}",
            f"--window-size={window_size[0]},{window_size[1]}",
            page.as_uri(),
        ]
        # Own session: on a timeout the whole Chromium process group (ours only) is killed.
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"chromium timed out after {timeout}s rendering {page}") from None
    if proc.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium failed (exit {proc.returncode}):\n{err[-3000:]}")
    return png


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    """Undo one scanline's PNG filter in place (PNG spec §9.2)."""
    if kind == 2:  # Up: no dependence along the row, so vectorise.
        line[:] = (np.frombuffer(line, np.uint8) + np.frombuffer(prev, np.uint8)).tobytes()
        return
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        c = prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + a) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((a + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            line[i] = (line[i] + _paeth(a, prev[i], c)) & 0xFF
        elif kind != 0:
            raise ValueError(f"bad PNG filter type {kind}")


def decode_png_rgb(data: bytes) -> tuple[int, int, bytes]:
    """Decode an 8-bit, non-interlaced grey/RGB/RGBA PNG (what Chromium writes) with zlib.

    Returns:
        ``(width, height, rgb)`` with ``rgb`` row-major, 3 bytes per pixel (alpha dropped).
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or interlace != 0 or channels is None:
        raise ValueError(f"unsupported PNG (depth {depth}, colour {colour}, interlace {interlace})")
    raw, stride = zlib.decompress(b"".join(idat)), width * channels
    prev, rows = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, prev, channels)
        rows.append(line)
        prev = line
    pixels = np.frombuffer(b"".join(rows), np.uint8).reshape(height * width, channels)
    rgb = np.repeat(pixels[:, :1], 3, axis=1) if channels <= 2 else pixels[:, :3]
    return width, height, np.ascontiguousarray(rgb).tobytes()


def read_png_rgb(png_path: str | Path) -> tuple[int, int, bytes]:
    """``(width, height, rgb)`` of a PNG: Pillow when importable, else :func:`decode_png_rgb`."""
    try:
        from PIL import Image
    except ImportError:
        return decode_png_rgb(Path(png_path).read_bytes())
    with Image.open(png_path) as image:
        rgb = image.convert("RGB")
        return rgb.width, rgb.height, rgb.tobytes()


def count_colored_pixels(png_path: str | Path, *, min_chroma: int = MIN_CHROMA) -> int:
    """Pixels whose ``max(R,G,B) - min(R,G,B) >= min_chroma`` (clearly not white/grey/black)."""
    _, _, rgb = read_png_rgb(png_path)
    pixels = np.frombuffer(rgb, np.uint8).reshape(-1, 3).astype(np.int16)
    chroma = pixels.max(axis=1) - pixels.min(axis=1)
    return int((chroma >= min_chroma).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the page to render")
    parser.add_argument("png", type=Path, help="where to write the screenshot")
    parser.add_argument("--min-pixels", type=int, default=500, help="fail below this count")
    args = parser.parse_args(argv)
    try:
        png = screenshot(args.html, args.png)
    except (FileNotFoundError, RuntimeError) as err:
        print(f"[screenshot_html] {err}", file=sys.stderr)
        return 2
    count = count_colored_pixels(png)
    print(f"{count} coloured pixels in {png}")
    if count < args.min_pixels:
        print(f"[screenshot_html] expected at least {args.min_pixels}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
