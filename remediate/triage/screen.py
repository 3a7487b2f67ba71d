"""What a boot screen (GetConsoleScreenshot's JPG) shows: a stop code, black, or a
sign-in screen, from its dominant colours.

The check is deliberately simple: the screen is shrunk to 32x24 and its pixels counted.
Mostly the stop-code blue (Windows 10 / Server 2016 and later: RGB 0,120,215; Server
2012: 16,113,170; older: 0,0,170) is a stop code; almost all near-black is black (no
video, or a hung guest); anything else is taken for the sign-in screen. Pillow decodes
the JPG (GetConsoleScreenshot returns "a JPG-format screenshot", EC2 API reference):
a JPEG decoder is not worth writing here.

:func:`shows_login` is the reusable check "the boot screen shows a sign-in screen, no
stop code", for a wait or an assertion (proof of recovery).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

Verdict = Literal["stop-code", "black", "login", "unreadable"]

STOP_CODE_BLUES: Final = ((0, 120, 215), (16, 113, 170), (0, 0, 170))
BLUE_DISTANCE: Final = 60.0
"""How far (Euclidean, RGB) a pixel may be from a stop-code blue and count as it (JPEG
noise and anti-aliased text stay well within)."""
STOP_CODE_SHARE: Final = 0.5
DARK: Final = 32
"""A pixel whose every channel is below this counts as black."""
BLACK_SHARE: Final = 0.97
_SAMPLE: Final = (32, 24)


@dataclass(frozen=True)
class ScreenReading:
    verdict: Verdict
    blue: float = 0.0
    """Share of the pixels near a stop-code blue."""
    dark: float = 0.0
    """Share of the pixels near black."""


def judge(pixels: Iterable[tuple[int, int, int]]) -> ScreenReading:
    """The verdict on RGB pixels (the statistics, apart from decoding)."""
    limit = BLUE_DISTANCE ** 2
    total = blue = dark = 0
    for r, g, b in pixels:
        total += 1
        if r < DARK and g < DARK and b < DARK:
            dark += 1
            continue
        for br, bg, bb in STOP_CODE_BLUES:
            if (r - br) ** 2 + (g - bg) ** 2 + (b - bb) ** 2 <= limit:
                blue += 1
                break
    if total == 0:
        return ScreenReading("unreadable")
    shares = blue / total, dark / total
    if shares[0] >= STOP_CODE_SHARE:
        return ScreenReading("stop-code", *shares)
    if shares[1] >= BLACK_SHARE:
        return ScreenReading("black", *shares)
    return ScreenReading("login", *shares)


def read(image_data: str | None) -> ScreenReading:
    """The verdict on GetConsoleScreenshot's ``ImageData`` (base64 JPG)."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(image_data or "", validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            raw_pixels = image.convert("RGB").resize(_SAMPLE).tobytes()
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError):
        return ScreenReading("unreadable")
    return judge(zip(raw_pixels[0::3], raw_pixels[1::3], raw_pixels[2::3], strict=True))


def shows_login(image_data: str | None) -> bool:
    """Whether the screen shows a sign-in screen (no stop code, not black)."""
    return read(image_data).verdict == "login"
