"""The layout's import rules, checked on the source: the data's path runs one way.

The core (every `ledger` module except the `ledger.cli` entry point and the `ledger.sim` tools)
never imports the HTTP layer or the simulators, and the stages import each other one way only
(`ALLOWED` below: chain and store first, then meters, anchoring, readings, market, billing), so
no package depends on one that depends on it. A module-level import and an import inside a
function count the same: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from ledger.chain.compiler import PROJECT_ROOT
from ledger.store.database import Store

ROOT = Path(PROJECT_ROOT)

# The stages below `ledger`, each with the stages and top-level modules it may import. Top-level
# modules (`ledger.errors`, `ledger.settings`, ...) are "top"; `ledger.node` wires the stages
# together for the gateway and the commands.
ALLOWED: dict[str, set[str]] = {
    "top": {"top"},
    "chain": {"top", "store"},
    "store": {"top"},
    "meters": {"top", "chain", "store"},
    "anchoring": {"top", "chain", "store"},
    "readings": {"top", "chain", "store", "meters", "anchoring"},
    "market": {"top", "chain", "store", "meters", "anchoring", "readings"},
    "billing": {"top", "chain", "store", "meters", "anchoring", "readings", "market"},
    "complaints": {"top", "chain", "store", "market"},
    # The auditor's tools: they re-derive every stage's output, so they may read every stage;
    # only the command line imports them.
    "audit": {
        "top",
        "chain",
        "store",
        "meters",
        "anchoring",
        "readings",
        "market",
        "billing",
        "complaints",
    },  # fmt: skip
    "node": {
        "top",
        "chain",
        "store",
        "meters",
        "anchoring",
        "readings",
        "market",
        "billing",
        "complaints",
    },
}
# The command line (its billing commands in their own module) and the package's re-exports.
ENTRY_POINTS = {"ledger.cli", "ledger.billing_cli", "ledger.complaints_cli", "ledger"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # `from ledger import x` imports the module ledger.x when x is one
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def stage_of(module: str) -> str | None:
    """The stage a ledger module belongs to, None outside the core."""
    parts = module.split(".")
    if parts[0] != "ledger" or module in ENTRY_POINTS:
        return None
    if len(parts) == 1:
        return None
    if not (ROOT / "ledger" / parts[1]).is_dir():
        return "node" if parts[1] == "node" else "top"
    return parts[1]


def core_modules() -> list[Path]:
    return [
        path
        for path in sorted((ROOT / "ledger").rglob("*.py"))
        if stage_of(module_name(path)) not in (None, "sim")
    ]


def test_the_stages_are_the_packages_the_rules_name() -> None:
    packages = {
        path.name for path in (ROOT / "ledger").iterdir() if (path / "__init__.py").exists()
    }
    assert packages == set(ALLOWED) - {"top", "node"} | {"sim"}


def test_every_stage_package_says_what_it_owns_and_may_import() -> None:
    for package in set(ALLOWED) - {"top", "node"} | {"sim"}:
        docstring = ast.get_docstring(
            ast.parse((ROOT / "ledger" / package / "__init__.py").read_text())
        )
        assert docstring and "import" in docstring, package


def test_the_core_never_imports_the_http_layer_or_the_simulators() -> None:
    offenders = [
        (module_name(path), imported)
        for path in core_modules()
        for imported in imports_of(path)
        if imported.split(".")[0] == "api" or imported.startswith("ledger.sim")
    ]
    assert offenders == []


def test_each_stage_imports_only_the_stages_before_it() -> None:
    offenders = []
    for path in core_modules():
        stage = stage_of(module_name(path))
        assert stage is not None
        for imported in imports_of(path):
            target = stage_of(imported)
            if target is not None and target != stage and target not in ALLOWED[stage]:
                offenders.append((module_name(path), imported))
    assert offenders == []


def test_the_allowed_stage_imports_have_no_cycle() -> None:
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(stage: str, path: tuple[str, ...]) -> None:
        assert stage not in visiting, " -> ".join((*path, stage))
        if stage in done:
            return
        visiting.add(stage)
        for target in ALLOWED[stage] - {stage}:
            visit(target, (*path, stage))
        visiting.discard(stage)
        done.add(stage)

    for stage in ALLOWED:
        visit(stage, ())


def test_every_name_the_package_exports_is_there_on_first_use() -> None:
    import ledger

    for name in ledger.__all__:
        assert getattr(ledger, name) is not None, name


def test_a_billing_worker_starts_without_web3_or_alembic(tmp_path: Path) -> None:
    # Billing's worker processes import only the bill computation and the store: web3 and
    # Alembic cost about a second of each worker's start (see ledger/__init__.py).
    path = tmp_path / "ledger.db"
    Store(path).close()  # the parent opens (and upgrades) the database first
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ledger.billing.issuing import RunContext, _start_worker\n"
        f"_start_worker(Path({str(path)!r}), RunContext(0, 1, None, 1, '0x' + '00' * 20, "
        "('ELC', 2), 900, frozenset()))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('web3', 'alembic')))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "[]"
