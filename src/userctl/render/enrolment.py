"""How a freshly generated authenticator is shown to a person, once: the otpauth:// URI and the
same URI as a QR code drawn with text characters (DESIGN §4 "TOTP")."""

from __future__ import annotations

from userctl.printable import printable

# ISO/IEC 18004 asks for a light margin four modules wide around the symbol.
QUIET_ZONE = 4
# Black modules on white, set explicitly: the code then reads the same on a dark terminal as on a
# light one, where a code drawn in the terminal's own colours is inverted on one of them.
_BLACK_ON_WHITE = "\x1b[30;47m"
_RESET = "\x1b[0m"
# Two modules a character, top and bottom, keyed by (top dark, bottom dark). Without colours the
# glyphs draw dark modules in the text colour, which is dark on a light terminal.
_HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def qr_text(data: str, *, color: bool = True) -> str:
    """`data` as a QR code of half-block characters with a 4-module quiet zone. With `color`, each
    line is drawn black on white whatever the terminal's theme; without, in the terminal's own
    colours, which scans on a light background only (the URI printed with it always works)."""
    import qrcode

    code = qrcode.QRCode(border=QUIET_ZONE, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(data)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))  # a light row: the quiet zone only grows
    lines = []
    for top, bottom in zip(matrix[::2], matrix[1::2], strict=True):
        row = "".join(_HALF_BLOCKS[t, b] for t, b in zip(top, bottom, strict=True))
        lines.append(f"{_BLACK_ON_WHITE}{row}{_RESET}" if color else row)
    return "\n".join(lines) + "\n"


def enrolment_text(email: str, uri: str, *, color: bool = True) -> str:
    return (
        f"Authenticator for {printable(email)}: scan this QR code with an authenticator app\n"
        "(Google Authenticator, 1Password, Authy...), or add the URI below by hand.\n\n"
        f"{qr_text(uri, color=color)}\n"
        f"{uri}\n\n"
        "This secret is shown ONCE and cannot be displayed again: store it now. If it is lost,\n"
        "another administrator can issue a new one with `userctl mfa enroll`.\n"
    )
