"""Writes to the filesystem never delete what userctl did not write (DESIGN §8 invariant 9;
cli/outputs/). Tried as an unlucky user (`evidence -o . --force` in the working directory used to
remove the database and the desired-state file) and as someone who plants a directory or a link
where a pack is written."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from tests.apply.apply_helpers import build_org, exported, live_state
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl.cli.outputs import MANIFEST, PACK_HEADER
from userctl.state import LiveState

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
PERIOD = ("--since", "2020-01-01", "--until", "2020-12-31")


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under `root` (not following links) with its bytes, or the link's target."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_file():
            found[key] = path.read_bytes()
        else:
            found[key] = "dir"
    return found


def _pack(runner: Runner, out: Path, *extra: str) -> None:
    done = runner("evidence", *PERIOD, "-o", str(out), *extra)
    assert done.exit_code == 0, done.output


@pytest.fixture
def org(factory: Factory) -> None:
    build_org(factory)


@sqlite_only
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_evidence_into_the_working_directory_is_refused_and_touches_nothing(
    runner: Runner,
    org: None,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    force: list[str],
) -> None:
    assert Path(db_url.removeprefix("sqlite:///")).parent == tmp_path
    write_desired(tmp_path / "users.yaml", exported(live_state_of(db_url)))
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    refused = runner("evidence", *PERIOD, "-o", ".", *force)
    assert refused.exit_code == 1, refused.output
    assert "would replace the working directory" in refused.stderr
    assert "Traceback" not in refused.output
    assert _tree(tmp_path) == before  # t.db and users.yaml intact, nothing left beside them


def test_evidence_into_the_working_directory_is_refused_even_when_it_is_a_pack(
    runner: Runner, org: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "pack"
    _pack(runner, out)
    monkeypatch.chdir(out)
    before = _tree(tmp_path)
    for target in (".", str(tmp_path / "pack"), ".."):
        refused = runner("evidence", *PERIOD, "-o", target, "--force")
        assert refused.exit_code == 1, refused.output
        assert "would replace the working directory" in refused.stderr
    assert _tree(tmp_path) == before


@sqlite_only
def test_evidence_into_a_directory_holding_the_database_is_refused(
    runner: Runner, org: None, db_url: str, tmp_path: Path
) -> None:
    db = Path(db_url.removeprefix("sqlite:///"))
    nested = tmp_path / "data" / "db"
    nested.mkdir(parents=True)
    moved = nested / "userctl.db"
    db.rename(moved)
    runner.db_url = f"sqlite:///{moved}"
    before = _tree(tmp_path)
    for target in (tmp_path / "data", nested, tmp_path):
        refused = runner("evidence", *PERIOD, "-o", str(target), "--force")
        assert refused.exit_code == 1, refused.output
        assert f"would replace {moved}" in refused.stderr
    assert _tree(tmp_path) == before


def test_evidence_into_a_foreign_directory_is_refused_even_with_force(
    runner: Runner, org: None, tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    before = _tree(tmp_path)
    refused = runner("evidence", *PERIOD, "-o", str(out), "--force")
    assert refused.exit_code == 1, refused.output
    assert "'notes.txt' and no SHA256SUMS" in refused.stderr
    assert "Nothing was written" in refused.stderr
    assert _tree(tmp_path) == before


def test_evidence_replaces_only_a_pack_it_recognises(
    runner: Runner, org: None, tmp_path: Path
) -> None:
    out = tmp_path / "pack"
    _pack(runner, out)
    lines = (out / MANIFEST).read_text(encoding="utf-8").splitlines()
    assert lines[0] == PACK_HEADER
    pristine = _tree(tmp_path)

    # A pack with one more file, or one file edited since, is no longer what userctl wrote.
    (out / "auditor-notes.txt").write_text("found nothing\n")
    refused = runner("evidence", *PERIOD, "-o", str(out), "--force")
    assert refused.exit_code == 1 and "'auditor-notes.txt', which its SHA256SUMS does not list" in (
        refused.stderr
    )
    assert (out / "auditor-notes.txt").read_text() == "found nothing\n"
    (out / "auditor-notes.txt").unlink()
    (out / "plans.json").write_text("edited\n")
    refused = runner("evidence", *PERIOD, "-o", str(out), "--force")
    assert refused.exit_code == 1 and "'plans.json', changed since userctl wrote it" in (
        refused.stderr
    )
    assert (out / "plans.json").read_text() == "edited\n"

    # A release directory's own SHA256SUMS (no userctl header) lists every file: still foreign.
    names = sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    (out / MANIFEST).write_text(
        "".join(f"{hashlib.sha256((out / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    )
    refused = runner("evidence", *PERIOD, "-o", str(out), "--force")
    assert refused.exit_code == 1 and "a SHA256SUMS that userctl did not write" in refused.stderr

    # The earlier pack as written is replaced (with --force), and nothing is left beside it.
    for path in out.iterdir():
        path.unlink()
    out.rmdir()
    _pack(runner, out)
    assert _tree(tmp_path).keys() == pristine.keys()
    not_forced = runner("evidence", *PERIOD, "-o", str(out))
    assert not_forced.exit_code == 1 and "add --force to replace that pack" in not_forced.stderr
    _pack(runner, out, "--force")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".userctl")] == []
    assert _tree(tmp_path).keys() == pristine.keys()


def test_evidence_through_a_symlink_replaces_the_target_and_leaves_nothing(
    runner: Runner, org: None, tmp_path: Path
) -> None:
    real = tmp_path / "archive" / "2020"
    real.parent.mkdir()
    _pack(runner, real)
    link = tmp_path / "current"
    link.symlink_to(real, target_is_directory=True)
    _pack(runner, link, "--force")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".userctl")] == []
    assert sorted(p.name for p in real.parent.iterdir()) == ["2020"]
    assert (real / MANIFEST).read_text(encoding="utf-8").startswith(PACK_HEADER)


def test_evidence_into_an_empty_directory(runner: Runner, org: None, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    _pack(runner, out)
    assert (out / "index.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".userctl")] == []


@sqlite_only
def test_single_file_outputs_never_overwrite_what_the_command_reads(
    runner: Runner, org: None, db_url: str, tmp_path: Path
) -> None:
    db = Path(db_url.removeprefix("sqlite:///"))
    desired = write_desired(tmp_path / "users.yaml", exported(live_state_of(db_url)))
    before = _tree(tmp_path)
    for args, why in [
        (("plan", "-f", str(desired), "--out", str(desired)), "which this command reads"),
        (("plan", "-f", str(tmp_path), "--out", str(desired)), "which this command reads"),
        (("plan", "-f", str(desired), "--out", str(db)), "which this command reads"),
        (("export", "-o", str(db)), "which this command reads"),
        (("export", "-o", str(tmp_path)), "is a directory"),
        (("plan", "-f", str(desired), "--out", str(tmp_path)), "is a directory"),
    ]:
        refused = runner(*args)
        assert refused.exit_code == 1, (args, refused.output)
        assert why in refused.stderr, (args, refused.stderr)
        assert _tree(tmp_path) == before, args


@sqlite_only
@pytest.mark.parametrize("suffix", ["-journal", "-wal", "-shm"])
def test_no_output_takes_the_name_of_a_file_sqlite_keeps_beside_the_database(
    runner: Runner, org: None, db_url: str, tmp_path: Path, suffix: str
) -> None:
    """SQLite's journal, write-ahead log and its index are the database's own: an export written
    as `userctl.db-journal` was deleted by the next command's open (a journal it cannot read is
    a spent one), and over a journal a crash left behind it would have taken the database's
    recovery with it."""
    db = Path(db_url.removeprefix("sqlite:///"))
    companion = Path(str(db) + suffix)
    desired = write_desired(tmp_path / "users.yaml", exported(live_state_of(db_url)))
    for args in [
        ("export", "-o", str(companion)),
        ("plan", "-f", str(desired), "--out", str(companion)),
        ("audit", "keygen", "-o", str(companion)),
    ]:
        refused = runner(*args)
        assert refused.exit_code == 1, (args, refused.output)
        assert f"is {companion}, which this command reads" in refused.stderr, refused.stderr
        assert not companion.exists(), args
    # Nor a pack's directory (a directory there would fail every later write of the database).
    refused = runner("evidence", *PERIOD, "-o", str(companion))
    assert refused.exit_code == 1 and f"would replace {companion}" in refused.stderr
    assert not companion.exists()


def test_a_file_named_as_a_databases_journal_is_deleted_by_sqlite(tmp_path: Path) -> None:
    """Why the rule above: what SQLite does to a file under its journal's name."""
    import sqlite3

    db = tmp_path / "userctl.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    journal = Path(str(db) + "-journal")
    journal.write_text("version: 1\norganization: acme\n", encoding="utf-8")
    conn = sqlite3.connect(db)
    conn.execute("SELECT count(*) FROM t").fetchall()
    conn.close()
    assert not journal.exists()


def live_state_of(db_url: str) -> LiveState:
    from userctl.db.engine import create_engine_for

    engine = create_engine_for(db_url)
    try:
        return live_state(engine)
    finally:
        engine.dispose()


SRC = Path(__file__).resolve().parents[2] / "src" / "userctl"
# What writes, replaces or deletes files: only the package cli/outputs/ may, so that the next
# command that writes a file gets the rule instead of forgetting it.
WRITER = SRC / "cli" / "outputs"
FILE_WRITES = re.compile(
    r"open\([^)]*['\"][wax]b?\+?['\"]|\.write_(text|bytes)\(|os\.(replace|rename|unlink|remove|"
    r"rmdir|makedirs|mkdir)\(|\.(unlink|rename|rmdir|mkdir)\(|rmtree|mkdtemp|mkstemp|"
    r"NamedTemporaryFile|copyfile|shutil\.(copy|move)"
)


def test_only_the_output_writer_writes_files() -> None:
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if WRITER not in path.parents
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FILE_WRITES.search(line)
    ]
    assert found == []
    # The writer's own modules are seen by the pattern: the scan is not blind.
    for module in ("files.py", "packs.py"):
        assert FILE_WRITES.search((WRITER / module).read_text(encoding="utf-8")), module


@sqlite_only
def test_no_output_follows_a_link_another_user_made_in_a_shared_directory(
    runner: Runner, org: None, db_url: str, tmp_path: Path
) -> None:
    """A classic /tmp attack: another local user plants `/tmp/users.yaml -> ~/.ssh/authorized_keys`
    and waits for `export -o /tmp/users.yaml`. Resolved first and renamed onto, the link would
    replace the victim's file (the kernel's fs.protected_symlinks guards open(), not that)."""
    if os.geteuid() != 0:
        pytest.skip("making a link that another user owns takes root (CI runs as root)")
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA the-only-key\n", encoding="utf-8")
    planted = shared / "users.yaml"
    planted.symlink_to(victim)
    os.lchown(planted, 65534, 65534)  # nobody's link
    desired = write_desired(tmp_path / "users.yaml", exported(live_state_of(db_url)))
    for args in [
        ("export", "-o", str(planted)),
        ("plan", "-f", str(desired), "--out", str(planted)),
    ]:
        refused = runner(*args)
        assert refused.exit_code == 1, (args, refused.output)
        assert "goes through a link another user made in the shared directory" in refused.stderr
    assert victim.read_text(encoding="utf-8") == "ssh-ed25519 AAAA the-only-key\n"
    # A link of one's own in the same directory is followed, as before.
    mine = shared / "mine.yaml"
    mine.symlink_to(tmp_path / "export.yaml")
    done = runner("export", "-o", str(mine))
    assert done.exit_code == 0, done.output
    assert mine.is_symlink() and (tmp_path / "export.yaml").is_file()


@sqlite_only
@pytest.mark.parametrize(
    "spelling",
    [
        "sqlite:///file:{db}?uri=true",
        "sqlite:///file:{db}?mode=rw&uri=true",
        "sqlite:///file://localhost{db}?uri=true",
        "sqlite:///file:{quoted}?uri=1",
    ],
)
def test_no_output_replaces_a_database_named_by_a_sqlite_uri(
    org: None, db_url: str, tmp_path: Path, spelling: str
) -> None:
    """The same database named as a SQLite URI (https://www.sqlite.org/uri.html): `export -o` of
    the database's own path replaced it with the export, and the next command found "file is not
    a database"."""
    from urllib.parse import quote

    from tests.conftest import Runner

    db = Path(db_url.removeprefix("sqlite:///"))
    runner = Runner(spelling.format(db=db, quoted=quote(str(db))))
    assert runner("users", "list").exit_code == 0  # the URL names this very database
    stored = db.read_bytes()
    desired = write_desired(tmp_path / "users.yaml", exported(live_state_of(db_url)))
    for target in (db, Path(str(db) + "-journal")):
        for args in [
            ("export", "-o", str(target)),
            ("plan", "-f", str(desired), "--out", str(target)),
        ]:
            refused = runner(*args)
            assert refused.exit_code == 1, (args, refused.output)
            assert "which this command reads" in refused.stderr, refused.stderr
    assert db.read_bytes() == stored
    assert not Path(str(db) + "-journal").exists()
    assert runner("users", "list").exit_code == 0


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///file::memory:?uri=true", None),
        ("sqlite:///file:shared?mode=memory&cache=shared&uri=true", None),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql://u@h/db", None),
        ("sqlite:///file:rel.db?uri=true", "rel.db"),
        ("sqlite:///file:a%20b.db?uri=true", "a b.db"),
        ("sqlite:///file:/abs/x.db?mode=ro&uri=true", "/abs/x.db"),
        ("sqlite:///file:///abs/y.db?uri=true", "/abs/y.db"),  # an empty authority
        ("sqlite:///file://localhost/abs/z.db?uri=true", "/abs/z.db"),
        ("sqlite:///plain.db", "plain.db"),
        # Without uri=true SQLAlchemy's driver opens the name as it is written.
        ("sqlite:///file:/abs/x.db", "file:/abs/x.db"),
        ("sqlite:///file:/abs/x.db?uri=false", "file:/abs/x.db"),
    ],
)
def test_the_file_a_sqlite_url_names(url: str, path: str | None) -> None:
    from userctl.db.engine import sqlite_path

    assert sqlite_path(url) == (None if path is None else os.path.abspath(path))
