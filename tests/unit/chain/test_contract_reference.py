"""docs/contracts.md: its generated tables match the compiled contracts, and its raw JSON-RPC
examples use the selectors of the functions they name."""

from __future__ import annotations

import re

from eth_utils.crypto import keccak

from ledger.chain.compiler import compile_contracts
from ledger.chain.reference import (
    BEGIN_MARKER,
    END_MARKER,
    REFERENCE_FILE,
    render_reference,
    signature,
    updated_document,
)

EXAMPLE = re.compile(r"^# (\w+)\(([^)]*)\).*\n.*\n.*\"data\":\"0x([0-9a-f]{8})", re.MULTILINE)


def test_the_generated_reference_matches_the_compiled_contracts() -> None:
    document = REFERENCE_FILE.read_text()
    start = document.index(BEGIN_MARKER)
    end = document.index(END_MARKER) + len(END_MARKER)
    assert document[start:end] == render_reference(), (
        "docs/contracts.md is out of date: run `.venv/bin/python -m ledger.chain.reference`"
    )


def test_every_deployed_function_event_and_error_is_listed_with_its_selector() -> None:
    generated = render_reference()
    for artifact in compile_contracts().values():
        for entry in artifact.abi:
            if entry["type"] not in ("function", "event", "error"):
                continue
            digest = keccak(text=signature(entry))
            shown = digest if entry["type"] == "event" else digest[:4]
            assert f"`0x{shown.hex()}`" in generated, signature(entry)


def test_the_raw_call_examples_use_the_selector_of_the_function_they_name() -> None:
    examples = EXAMPLE.findall(REFERENCE_FILE.read_text())
    assert {name for name, _, _ in examples} == {"lastBatchId", "batchRoot"}
    for name, params, selector in examples:
        types = ",".join(p.split()[0] for p in params.split(",") if p.strip())
        assert keccak(text=f"{name}({types})")[:4].hex() == selector, name


def test_regenerating_replaces_only_the_text_between_the_markers() -> None:
    document = f"intro\n{BEGIN_MARKER}\nold\n{END_MARKER}\noutro\n"
    assert updated_document(document, "NEW") == "intro\nNEW\noutro\n"
