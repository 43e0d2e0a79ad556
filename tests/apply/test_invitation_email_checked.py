"""The invitation email as delivered over SMTP, held to the tools that read it: the Nu HTML
Checker (vnu-jar from npm, run by java) finds nothing in its HTML part, which has a language and
a title; and it carries `Auto-Submitted: auto-generated` (RFC 3834), so that vacation responders
and auto-forwarders do not answer a machine."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.apply import test_notify
from tests.apply.test_notify import NOW, SmtpServer, part, send_env
from tests.real_tools import node_package, program
from userctl.apply import outbox
from userctl.db.engine import begin_write

smtp = test_notify.smtp  # an SMTP server on a free loopback port


def nu_check(html: str) -> list[dict[str, Any]]:
    """The Nu HTML Checker's messages (errors, warnings and info) on `html`."""
    java = program("java", "apt-get install default-jre-headless")
    jar = node_package("vnu-jar/build/dist/vnu.jar")
    done = subprocess.run(
        [java, "-jar", str(jar), "--format", "json", "--stdout", "-"],
        input=html,
        capture_output=True,
        text=True,
        timeout=120,
    )
    messages: list[dict[str, Any]] = json.loads(done.stdout)["messages"]
    return messages


# The message does not depend on the database: one backend is enough.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_delivered_invitation_passes_the_nu_checker_and_says_it_is_automatic(
    engine: Engine, factory: Any, smtp: SmtpServer, runner: Any
) -> None:
    org = factory.org("acme-payments", name="Acme & <Sons>")
    user = factory.user(
        org, "nuevo@acme.co", factory.role(org, "Viewer"), status="invited", first_name="Nuevo"
    )
    with begin_write(engine) as conn:
        outbox.queue_invitation(conn, org, user, "nuevo@acme.co", NOW)
    smtp.start()
    result = runner("notifications", "send", env=send_env(smtp.url))
    assert result.exit_code == 0, result.output
    [message] = smtp.inbox.messages

    assert message["Auto-Submitted"] == "auto-generated"
    page = part(message, "text/html")
    assert '<html lang="en">' in page
    assert "<title>You are invited to Acme &amp; &lt;Sons&gt;</title>" in page
    assert nu_check(page) == []
