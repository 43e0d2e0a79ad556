"""The enrolment QR code scans on any terminal. What a terminal shows is rebuilt as an image
(each character cell two modules, in the colours its escape sequences or the terminal's theme
give it, inside a margin of the terminal's background) and decoded by zbar (`zbarimg`), the
reader behind many scanner apps: the decoded text must be the otpauth URI, on a light and on a
dark terminal, with the 4-module quiet zone the QR standard asks for."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pyotp
import pytest

from tests.conftest import Runner
from tests.real_tools import program
from userctl.render.enrolment import QUIET_ZONE, qr_text

URI = pyotp.TOTP(pyotp.random_base32()).provisioning_uri(
    name="ana.perez@acme.co", issuer_name="userctl: acme"
)
# (default text colour, default background) of two common themes, as grey levels; SGR colours as
# xterm draws them.
THEMES = {"light": (0, 255), "dark": (204, 30)}
SGR_COLOURS = {0: 0, 7: 229}
SCALE = 4
_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def screen(text: str, theme: str) -> list[list[int]]:
    """The grey level of every module the terminal draws for `text`: two per character cell,
    top and bottom, surrounded by 8 modules of the terminal's background."""
    default_fg, default_bg = THEMES[theme]
    rows: list[list[int]] = []
    for line in text.splitlines():
        fg, bg = default_fg, default_bg
        top: list[int] = []
        bottom: list[int] = []
        for token in re.split(r"(\x1b\[[0-9;]*m)", line):
            sgr = _SGR.fullmatch(token)
            if sgr:
                for code in [int(c) for c in sgr.group(1).split(";") if c] or [0]:
                    if code == 0:
                        fg, bg = default_fg, default_bg
                    elif 30 <= code <= 37:
                        fg = SGR_COLOURS.get(code - 30, 128)
                    elif 40 <= code <= 47:
                        bg = SGR_COLOURS.get(code - 40, 128)
                continue
            for ch in token:
                top.append(fg if ch in "▀█" else bg)
                bottom.append(fg if ch in "▄█" else bg)
        rows += [top, bottom]
    width = max(len(r) for r in rows) + 16
    margin = [[default_bg] * width for _ in range(8)]
    return (
        margin
        + [[default_bg] * 8 + r + [default_bg] * (width - 8 - len(r)) for r in rows]
        + [row[:] for row in margin]
    )


def decode(modules: list[list[int]], tmp_path: Path) -> str:
    """zbarimg's reading of the modules drawn SCALE pixels wide, as a PGM image."""
    zbarimg = program("zbarimg", "apt-get install zbar-tools")
    height, width = len(modules) * SCALE, len(modules[0]) * SCALE
    pixels = bytes(v for row in modules for _ in range(SCALE) for v in row for _ in range(SCALE))
    image = tmp_path / "terminal.pgm"
    image.write_bytes(f"P5\n{width} {height}\n255\n".encode() + pixels)
    done = subprocess.run(
        [zbarimg, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip() if done.returncode == 0 else ""


@pytest.mark.parametrize("theme", sorted(THEMES))
def test_the_coloured_code_scans_on_a_light_and_a_dark_terminal(theme: str, tmp_path: Path) -> None:
    assert decode(screen(qr_text(URI, color=True), theme), tmp_path) == URI


def test_the_code_has_a_four_module_quiet_zone_of_its_own() -> None:
    """On a dark terminal the margin around the print is dark: the light quiet zone must be part
    of what is printed, four modules on every side, and the symbol starts right after it."""
    modules = screen(qr_text(URI, color=True), "dark")
    dark_bg = THEMES["dark"][1]
    rows = [r for r in modules if any(v != dark_bg for v in r)]
    printed = [[v for v in r if v != dark_bg] for r in rows]
    light = SGR_COLOURS[7]
    assert QUIET_ZONE == 4
    for edge in (printed[:4], printed[-5:-1]):  # an odd module count adds one light row at the end
        assert all(v == light for r in edge for v in r)
    assert all(r[:4] == [light] * 4 and r[-4:] == [light] * 4 for r in printed)
    # The finder pattern's corner module is the first one inside the zone.
    assert printed[4][4] == SGR_COLOURS[0] and printed[4][3] == light


def test_init_prints_a_code_that_scans_and_is_the_uri_it_prints(
    runner: Runner, tmp_path: Path
) -> None:
    """Through the CLI (not a terminal, so no colours): the code drawn in the text colour scans on
    a light terminal, and it carries exactly the otpauth URI printed under it."""
    example = Path(__file__).resolve().parents[2] / "examples" / "users.yaml"
    result = runner("init", "-f", str(example), "--admin", "ana.perez@acme.co")
    assert result.exit_code == 0, result.output
    uri = next(line for line in result.stdout.splitlines() if line.startswith("otpauth://"))
    assert "\x1b" not in result.stdout
    assert decode(screen(result.stdout, "light"), tmp_path) == uri
