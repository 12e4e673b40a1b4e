"""Field types the resource schemas share: how core values (bytes, bytes32 meter ids) read in JSON.

Each converter also passes its JSON form through unchanged, so a schema validates the same from
the core's dataclass and from its own dumped JSON.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from ledger.meters.registry import meter_id_text


def _hex(value: Any) -> Any:
    return "0x" + bytes(value).hex() if isinstance(value, bytes) else value


def _meter_id(value: Any) -> Any:
    return meter_id_text(value) if isinstance(value, bytes) else value


Hex = Annotated[str, BeforeValidator(_hex)]
"""Bytes shown as 0x + lowercase hex."""

MeterIdText = Annotated[str, BeforeValidator(_meter_id)]
"""A bytes32 meter id shown as its serial when it is one, else as 0x + 64 hex digits."""


class Derived:
    """A core object seen with a few more attributes: what its schema shows beyond the object's
    own fields (the transaction that changed it, values that depend on the deployment), so
    `Schema.model_validate(Derived(obj, extra=...))` is still one conversion from attributes."""

    def __init__(self, base: object, **extra: object) -> None:
        self._base = base
        self.__dict__.update(extra)

    def __getattr__(self, name: str) -> Any:
        # Only called for names not set in __init__: the core object's own attributes.
        return getattr(self._base, name)
