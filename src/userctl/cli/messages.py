"""`say`: every sentence a command writes for a person, as opposed to a document a renderer
made (a plan, a table, JSON). A value it quotes — a path given on the command line, a database
URL, an email or name read from the database, a mail server's reply — is shown with its hidden
characters escaped, line by line (DESIGN §8 invariant 7): a file named `\\x1b]0;…\\x07.yaml` or
holding U+202E must not drive the terminal, nor a CI log, that shows the line."""

from __future__ import annotations

import click

from userctl.printable import printable


def say(message: str, *, err: bool = False, nl: bool = True) -> None:
    click.echo("\n".join(map(printable, message.split("\n"))), err=err, nl=nl)
