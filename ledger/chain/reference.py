"""The contracts' calling reference (docs/contracts.md), generated from the compiled ABIs.

Someone who talks to the chain with raw JSON-RPC (an auditor's script, a meter vendor's proof
checker) needs each function's exact signature, its 4-byte selector, what it returns, and the
selectors of the custom errors a revert carries. Written by hand, such a table drifts from the
contracts; generated from the same compiler output that is deployed, it cannot. A unit test
compares docs/contracts.md with `render_reference()`; `python -m ledger.chain.reference` rewrites
the generated part after a contract change.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from ledger.chain.compiler import (
    DEPLOYABLE_CONTRACTS,
    PROJECT_ROOT,
    ContractArtifact,
    compile_contracts,
)

REFERENCE_FILE = PROJECT_ROOT / "docs" / "contracts.md"
BEGIN_MARKER = "<!-- BEGIN GENERATED: python -m ledger.chain.reference -->"
END_MARKER = "<!-- END GENERATED -->"


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples spelled out, as selectors need them)."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(component) for component in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def signature(entry: Mapping[str, Any]) -> str:
    """`name(type,type,...)`: what a selector or an event topic is the keccak256 of."""
    return f"{entry['name']}({','.join(abi_type(p) for p in entry['inputs'])})"


def _parameters(params: list[dict[str, Any]], *, indexed: bool = False) -> str:
    shown = []
    for param in params:
        text = abi_type(param)
        if indexed and param.get("indexed"):
            text += " indexed"
        if param.get("name"):
            text += f" {param['name']}"
        shown.append(text)
    return ", ".join(shown)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_contract(artifact: ContractArtifact) -> str:
    """One contract's section: functions, events and custom errors with selectors and notices."""
    notices = dict(artifact.notices)
    lines = [f"### {artifact.name}", ""]
    if notices.get(""):
        lines += [_cell(notices[""]), ""]
    functions = sorted((e for e in artifact.abi if e["type"] == "function"), key=signature)
    lines += [
        "| function | selector | kind | returns | notice |",
        "|---|---|---|---|---|",
    ]
    for entry in functions:
        sig = signature(entry)
        selector = "0x" + keccak(text=sig)[:4].hex()
        returns = _parameters(entry.get("outputs", [])) or "-"
        lines.append(
            f"| `{entry['name']}({_parameters(entry['inputs'])})` | `{selector}` "
            f"| {entry['stateMutability']} | `{returns}` | {_cell(notices.get(sig, ''))} |"
        )
    # An event is found by its whole keccak256 (topic 0), an error by the first 4 bytes (selector).
    for kind, heading, digest_bytes in (("event", "topic 0", 32), ("error", "selector", 4)):
        entries = sorted((e for e in artifact.abi if e["type"] == kind), key=signature)
        if not entries:
            continue
        title = "event" if kind == "event" else "custom error"
        lines += ["", f"| {title} | {heading} | notice |", "|---|---|---|"]
        for entry in entries:
            sig = signature(entry)
            shown = _parameters(entry["inputs"], indexed=kind == "event")
            lines.append(
                f"| `{entry['name']}({shown})` "
                f"| `0x{keccak(text=sig)[:digest_bytes].hex()}` | {_cell(notices.get(sig, ''))} |"
            )
    return "\n".join(lines) + "\n"


def render_reference(artifacts: Mapping[str, ContractArtifact] | None = None) -> str:
    """The generated part of docs/contracts.md, markers included."""
    compiled = artifacts if artifacts is not None else compile_contracts()
    sections = [render_contract(compiled[name]) for name in DEPLOYABLE_CONTRACTS]
    return BEGIN_MARKER + "\n\n" + "\n".join(sections) + "\n" + END_MARKER


def updated_document(document: str, generated: str) -> str:
    """`document` with the text between the markers replaced by `generated`."""
    start = document.index(BEGIN_MARKER)
    end = document.index(END_MARKER) + len(END_MARKER)
    return document[:start] + generated + document[end:]


def main(path: Path = REFERENCE_FILE) -> int:
    """Rewrites the generated part of docs/contracts.md from the current contracts."""
    path.write_text(updated_document(path.read_text(), render_reference()))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
