"""The layout is the architecture: the core in custody/ does no I/O and imports no framework."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "custody"
#: Modules the core may never import: storage, HTTP, cameras, images, files, processes.
FORBIDDEN_MODULES = {
    "flask", "sqlalchemy", "alembic", "cv2", "pyzbar", "zxingcpp", "requests", "waitress", "click",
    "PIL", "reportlab", "segno", "numpy", "psycopg", "sqlite3", "socket", "subprocess", "urllib", "http",
    "shutil", "tempfile", "pathlib", "cli", "store", "web", "scanners", "printing", "keys", "apiflask",
}
#: Calls that touch the outside world.
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}
FORBIDDEN_ATTRIBUTES = {"read_text", "write_text", "read_bytes", "write_bytes", "system", "popen", "getenv",
                        "environ", "now", "utcnow", "today", "time_ns"}
#: The entry-point shim is the one file of custody/ allowed to reach the CLI.
EXEMPT = {CORE / "__main__.py"}


def core_files() -> list[Path]:
    return [p for p in sorted(CORE.rglob("*.py")) if p not in EXEMPT]


def test_the_core_exists_and_has_a_readme() -> None:
    assert len(core_files()) >= 5
    assert "no I/O" in (CORE / "README.md").read_text(encoding="utf-8")


def test_the_core_imports_no_framework_and_calls_nothing_outside() -> None:
    problems = []
    for path in core_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES:
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {node.func.id}()")
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno} uses .{node.attr}")
    assert problems == []


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    # The scan above must be able to fail: run its logic on a file that breaks the rule.
    bad = "import sqlalchemy\nfrom datetime import datetime\nx = datetime.now()\nopen('f')\n"
    tree = ast.parse(bad)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import)]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    attrs = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in FORBIDDEN_ATTRIBUTES]
    assert imports[0].names[0].name in FORBIDDEN_MODULES
    assert calls[0].func.id in FORBIDDEN_CALLS and attrs
