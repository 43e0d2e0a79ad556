"""How a freshly generated authenticator is shown to a person, once: the otpauth:// URI and the
same URI as a QR code drawn with text characters (DESIGN §4 "TOTP")."""

from __future__ import annotations

import io

from userctl.printable import printable


def qr_text(data: str) -> str:
    """`data` as a QR code of half-block characters, drawn light-on-dark: the common terminal
    colours then show dark modules on a light quiet zone, as scanners expect."""
    import qrcode

    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(data)
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()


def enrolment_text(email: str, uri: str) -> str:
    return (
        f"Authenticator for {printable(email)}: scan this QR code with an authenticator app\n"
        "(Google Authenticator, 1Password, Authy...), or add the URI below by hand.\n\n"
        f"{qr_text(uri)}\n"
        f"{uri}\n\n"
        "This secret is shown ONCE and cannot be displayed again: store it now. If it is lost,\n"
        "another administrator can issue a new one with `userctl mfa enroll`.\n"
    )
