"""The folders are the architecture (CONTRIBUTING.md "How the code is laid out"): every import in
src/userctl, at module level or inside a function, points down the layers, never up."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "userctl"
CONTRIBUTING = Path(__file__).resolve().parents[2] / "CONTRIBUTING.md"

# The pure core: no I/O, no database, no terminal.
CORE = {
    "canonical",
    "chain",
    "hexdigest",
    "errors",
    "clock",
    "state",
    "plan",
    "planner",
    "risk",
    "replan",
    "guards",
    "simulate",
    "gcpause",
    "printable",
    "names",
    "policies",
    "hygiene",
    "review",
    "verification",
}
# The core's compiled modules (setup.py): no .py file, one .c beside the module that imports it.
CORE_EXTENSIONS = {"_sha256"}
# What each layer may import from userctl, besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "desired": {"core"},
    "render": {"core"},
    "db": {"core"},
    "apply": {"core", "db", "desired"},
    "cli": {"core", "desired", "render", "db", "apply"},
    # The entry points (`python -m userctl`, `python -m userctl.precommit`) start the CLI.
    "entry": {"cli"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "userctl":
        raise ValueError(module)
    if len(parts) == 1:
        return "core"  # `from userctl import x` is resolved per name below
    head = parts[1]
    if head in CORE or head in CORE_EXTENSIONS:
        return "core"
    if head in ("__main__", "precommit"):
        return "entry"
    return head


def imports_of(path: Path) -> list[str]:
    """Every userctl module `path` imports, wherever the import statement stands."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("userctl")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("userctl"):
            if node.module in (
                "userctl",
                "userctl.db",
                "userctl.apply",
                "userctl.desired",
                "userctl.render",
                "userctl.cli",
            ):
                # `from userctl import plan`, `from userctl.apply import otp`: the names are modules
                # (or, for a package's re-exports, the package itself).
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    sub = SRC.joinpath(*candidate.split(".")[1:])
                    found.append(
                        candidate
                        if sub.with_suffix(".py").exists() or sub.is_dir()
                        else node.module
                    )
            else:
                found.append(node.module)
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_the_layers(path: Path) -> None:
    mine = layer_of(module_name(path))
    upward = [
        m for m in imports_of(path) if layer_of(m) != mine and layer_of(m) not in ALLOWED[mine]
    ]
    assert upward == [], f"{path.relative_to(SRC)} ({mine}) imports upward: {upward}"


def test_the_layering_check_sees_function_level_and_package_imports(tmp_path: Path) -> None:
    # The test above is only as good as its import finder: a lazy import inside a function and a
    # `from userctl.apply import otp` must both be seen.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from userctl.apply import otp\n    import userctl.cli.main\n",
        encoding="utf-8",
    )
    assert imports_of(sample) == ["userctl.apply.otp", "userctl.cli.main"]
    assert [layer_of(m) for m in imports_of(sample)] == ["apply", "cli"]


def test_the_top_level_holds_only_the_core_and_the_entry_points() -> None:
    modules = {p.stem for p in SRC.glob("*.py")} - {"__init__"}
    assert modules == CORE | {"__main__", "precommit"}


def test_contributing_layout_section_names_every_package() -> None:
    text = CONTRIBUTING.read_text(encoding="utf-8")
    section = text.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(?:src/userctl/)?([a-z_]+)/`", section))
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert named == packages, "CONTRIBUTING.md's layout section and the tree disagree"
    for module in CORE:
        assert f"`{module}.py`" in section or f"`{module}`" in section, (
            f"CONTRIBUTING.md's layout section omits {module}.py"
        )
