"""The boot screens the sandbox shows (GetConsoleScreenshot): small JPGs made once.

GetConsoleScreenshot returns "a JPG-format screenshot of a running instance",
base64-encoded (EC2 API reference, GetConsoleScreenshot; botocore's model says the
same). Three screens are enough to tell a crash loop from a recovered guest: the
blue stop-code screen of a Windows bug check, the sign-in ("Press Ctrl+Alt+Delete")
screen of a guest that booted, and black (no video yet, or a hung guest). Each is
drawn with rectangles where text would be: the triage classifier reads colours, not
words (:mod:`remediate.triage.screen`).
"""

from __future__ import annotations

import base64
import io
from functools import cache
from typing import Final

SIZE: Final = (320, 240)
STOP_CODE_BLUE: Final = (0, 120, 215)
"""The stop-code screen of Windows 10 / Server 2016 and later."""
SIGN_IN_BACKGROUND: Final = (22, 38, 52)
"""A dark lock-screen background, as Windows Server's sign-in screen shows."""
WHITE: Final = (255, 255, 255)

SCREENS: Final = ("stop-code", "login", "black")


@cache
def jpeg(screen: str) -> bytes:
    """The JPG of ``screen`` (one of :data:`SCREENS`)."""
    from PIL import Image, ImageDraw

    if screen not in SCREENS:
        raise ValueError(f"unknown screen {screen!r} (known: {', '.join(SCREENS)})")
    background = {"stop-code": STOP_CODE_BLUE, "login": SIGN_IN_BACKGROUND,
                  "black": (0, 0, 0)}[screen]
    image = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(image)
    if screen == "stop-code":
        draw.rectangle((30, 40, 60, 80), fill=WHITE)  # ":("
        for row in range(4):  # "Your device ran into a problem...", the stop code
            draw.rectangle((30, 100 + row * 20, 270 - row * 30, 108 + row * 20), fill=WHITE)
    elif screen == "login":
        draw.rectangle((30, 150, 140, 185), fill=WHITE)  # the clock
        draw.rectangle((30, 195, 200, 203), fill=WHITE)  # "Press Ctrl+Alt+Delete to unlock"
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def image_data(screen: str) -> str:
    """GetConsoleScreenshot's ``ImageData``: the JPG, base64-encoded."""
    return base64.b64encode(jpeg(screen)).decode("ascii")
