"""A database server that accepts the TCP connection but never answers (a hung server, a
firewall that swallows the handshake) fails within --connect-timeout on every server backend,
with one line and no traceback, instead of hanging the pipeline. The server is a real loopback
socket that accepts and never writes; the CLI runs as a subprocess, whose timeout is only a
safety net."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from userctl.db.engine import create_engine_for

USERCTL = str(Path(sys.executable).with_name("userctl"))
SAFETY_NET_S = 120


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port where connections are accepted, held open and never answered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    listener.close()
    thread.join(timeout=5)
    for conn in held:
        conn.close()


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
@pytest.mark.parametrize("how", ["option", "variable"])
def test_a_server_that_never_answers_fails_within_the_connect_timeout(
    silent_server: int, scheme: str, how: str
) -> None:
    url = f"{scheme}://someone@127.0.0.1:{silent_server}/app"
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERCTL_")}
    env["USERCTL_DATABASE_URL"] = url
    args = [USERCTL, "users", "list"]
    if how == "option":
        args += ["--connect-timeout", "1"]  # after the sub-command, as a global option may be
    else:
        env["USERCTL_CONNECT_TIMEOUT"] = "1"

    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=SAFETY_NET_S)

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"Error: cannot connect to the database at {scheme}://someone@127.0.0.1:{silent_server}/app"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_a_plan_on_the_driver_fails_within_the_connect_timeout_in_the_same_words(
    silent_server: int, scheme: str, tmp_path: Path
) -> None:
    """`plan` connects with the raw driver (db/thin.py), not the engine: the same refusal, with
    the timeout it is given."""
    from tests.db.test_snapshot_driver_cursor import ORG_YAML

    (tmp_path / "org.yaml").write_text(ORG_YAML, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERCTL_")}
    env["USERCTL_DATABASE_URL"] = f"{scheme}://someone@127.0.0.1:{silent_server}/app"
    args = [USERCTL, "plan", "-f", str(tmp_path / "org.yaml"), "--connect-timeout", "2"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=SAFETY_NET_S)

    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    driver = "postgresql+psycopg" if scheme == "postgresql" else "mysql+pymysql"
    query = "?charset=utf8mb4" if scheme == "mysql" else ""
    assert line.startswith(
        f"Error: cannot connect to the database at {driver}://someone@127.0.0.1:"
        f"{silent_server}/app{query}: "
    ), line


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_a_statement_may_take_longer_than_the_connect_timeout(db_url: str) -> None:
    """PyMySQL reads the handshake with the read timeout, so it is set to the connect timeout for
    the handshake only: a long lock wait or batch after it must not be cut off."""
    engine = create_engine_for(db_url, connect_timeout=1)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT SLEEP(2)").scalar() == 0
    finally:
        engine.dispose()
