"""A complaint as its chain events tell it: rounds, each round's step times, and where each
targeted step's clock stands.

The events are the ComplaintRegistry's, as the read model holds them
(`ledger.store.complaints.StepRow`, here `ComplaintEvent`) or as anyone decodes them from the
chain's logs (`event_from_log`, `read_chain_events`). Folding them needs nothing else: the
gateway's views, its monthly statistics and an auditor's recomputation all start here.

A round starts at the opening (round 1) or at a reopening; each targeted step's time is counted
from its round's start (utility practice: answer within 30 minutes of the complaint, name a
handler within 2 hours of it, a plan within 8 hours of it), against the targets of the
complaint's subject kind (`ledger.complaints.sla`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from ledger.complaints.sla import ServiceLevels
from ledger.store.complaints import StepRow

ComplaintEvent = StepRow
"""One ComplaintRegistry event: `step` is the event's name in the past tense, lower case."""

SUBJECT_KINDS = ("bill_line", "reading", "trade", "outage", "other")
"""`IComplaintRegistry.SubjectKind` by number."""
OPERATOR_STEPS = ("responded", "assigned", "planned", "resolved")
"""The operator's steps of a round, in the only order the contract accepts."""
TARGETED_STEPS = ("responded", "assigned", "planned")
"""The steps with a service-level target (`sla.Targets`)."""
EVENT_STEPS = {
    "ComplaintOpened": "opened",
    "ComplaintResponded": "responded",
    "ComplaintAssigned": "assigned",
    "ComplaintPlanned": "planned",
    "ComplaintResolved": "resolved",
    "ComplaintRated": "rated",
    "ComplaintReopened": "reopened",
}
"""The contract's event names and the steps they record."""


@dataclass(frozen=True)
class Round:
    """One round of a complaint: its start and the times of the steps taken in it."""

    number: int
    started_at: int
    times: Mapping[str, int] = field(default_factory=dict)  # step -> block time
    # step -> text hash; 'opened' is the round's own text (the complaint or the reopening's)
    text_hashes: Mapping[str, bytes] = field(default_factory=dict)
    handler: bytes | None = None
    rating: int | None = None

    @property
    def status(self) -> str:
        """The latest step taken, or 'open' for a round not answered yet (opened or reopened)."""
        for step in ("rated", "resolved", "planned", "assigned", "responded"):
            if step in self.times:
                return step
        return "open"


@dataclass(frozen=True)
class Complaint:
    """A complaint folded from its events."""

    complaint_id: int
    customer: str
    subject_kind: str
    subject_ref: bytes
    text_hash: bytes
    opened_at: int
    rounds: tuple[Round, ...]

    @property
    def current(self) -> Round:
        return self.rounds[-1]

    @property
    def status(self) -> str:
        return self.current.status

    @property
    def is_open(self) -> bool:
        """Whether the operator still owes a step (the round is not resolved)."""
        return self.status not in ("resolved", "rated")


@dataclass(frozen=True)
class StepClock:
    """Where one step of a round stands against its target at `now`.

    `state` is 'met' or 'late' for a step taken (`took_s` after the round's start), 'waiting'
    (`time_left_s` before its due time) or 'overdue' (`overdue_s` past it) for one not taken,
    and 'taken' / 'pending' for a step without a target (the resolution).
    """

    step: str
    target_s: int | None
    due_at: int | None
    at: int | None
    took_s: int | None
    state: str
    met: bool | None
    time_left_s: int | None = None
    overdue_s: int | None = None


def fold(events: Iterable[ComplaintEvent]) -> dict[int, Complaint]:
    """The complaints these events tell of, by id. Events are applied in chain order (block,
    log index); a complaint whose opening is missing from `events` is left out."""
    ordered = sorted(events, key=lambda e: (e.block_number, e.log_index))
    openings: dict[int, ComplaintEvent] = {}
    rounds: dict[int, list[dict[str, Any]]] = {}
    for event in ordered:
        if event.step == "opened":
            openings[event.complaint_id] = event
            rounds[event.complaint_id] = [_round(1, event.at, event.text_hash)]
            continue
        found = rounds.get(event.complaint_id)
        if found is None:
            continue
        if event.step == "reopened":
            found.append(_round(event.round, event.at, event.text_hash))
            continue
        current = next((r for r in found if r["number"] == event.round), None)
        if current is None:
            continue
        current["times"][event.step] = event.at
        if event.text_hash is not None:
            current["text_hashes"][event.step] = event.text_hash
        if event.step == "assigned":
            current["handler"] = event.handler
        if event.step == "rated":
            current["rating"] = event.rating
    folded = {}
    for complaint_id, opening in openings.items():
        kind = opening.subject_kind if opening.subject_kind is not None else len(SUBJECT_KINDS)
        folded[complaint_id] = Complaint(
            complaint_id=complaint_id,
            customer=str(opening.customer),
            subject_kind=SUBJECT_KINDS[kind] if kind < len(SUBJECT_KINDS) else str(kind),
            subject_ref=opening.subject_ref or bytes(32),
            text_hash=opening.text_hash or bytes(32),
            opened_at=opening.at,
            rounds=tuple(Round(**r) for r in rounds[complaint_id]),
        )
    return folded


def clocks(complaint: Complaint, round_: Round, levels: ServiceLevels, now: int) -> list[StepClock]:
    """Each operator step of `round_` against the targets of the complaint's kind at `now`."""
    targets = levels.targets(complaint.subject_kind)
    found = []
    for step in OPERATOR_STEPS:
        target = targets.for_step(step)
        at = round_.times.get(step)
        took = None if at is None else at - round_.started_at
        if target is None:
            state = "pending" if at is None else "taken"
            found.append(StepClock(step, None, None, at, took, state, None))
            continue
        due_at = round_.started_at + target
        if took is not None:
            met = took <= target
            found.append(StepClock(step, target, due_at, at, took, "met" if met else "late", met))
        elif now > due_at:
            found.append(
                StepClock(
                    step, target, due_at, None, None, "overdue", False, overdue_s=now - due_at
                )
            )
        else:
            found.append(
                StepClock(
                    step, target, due_at, None, None, "waiting", None, time_left_s=due_at - now
                )
            )
    return found


def time_to_breach(complaint: Complaint, levels: ServiceLevels, now: int) -> int | None:
    """Seconds until the current round's next targeted step is due (negative once overdue),
    or None when no targeted step is pending (planned, awaiting its resolution)."""
    pending = [
        clock.due_at - now
        for clock in clocks(complaint, complaint.current, levels, now)
        if clock.due_at is not None and clock.at is None
    ]
    return min(pending) if pending else None


def event_from_log(
    event_name: str, args: Mapping[str, Any], *, block_number: int, log_index: int
) -> ComplaintEvent:
    """A ComplaintRegistry log (decoded by web3: its event name and arguments) as an event."""
    return ComplaintEvent(
        complaint_id=int(args["complaintId"]),
        step=EVENT_STEPS[event_name],
        round=int(args.get("round", 1)),
        at=int(args["at"]),
        customer=to_checksum_address(args["customer"]) if "customer" in args else None,
        subject_kind=int(args["kind"]) if "kind" in args else None,
        subject_ref=bytes(args["subjectRef"]) if "subjectRef" in args else None,
        handler=bytes(args["handler"]) if "handler" in args else None,
        rating=int(args["rating"]) if "rating" in args else None,
        text_hash=bytes(args["textHash"]) if "textHash" in args else None,
        block_number=block_number,
        log_index=log_index,
    )


def _round(number: int, started_at: int, text_hash: bytes | None) -> dict[str, Any]:
    hashes = {} if text_hash is None else {"opened": text_hash}
    return {
        "number": number,
        "started_at": started_at,
        "times": {},
        "text_hashes": hashes,
        "handler": None,
        "rating": None,
    }


def read_chain_events(
    w3: Web3,
    registry: Contract,
    *,
    from_block: int = 0,
    to_block: int | None = None,
    range_blocks: int = 2000,
) -> list[ComplaintEvent]:
    """Every ComplaintRegistry event from the chain alone (`eth_getLogs` in ranges of at most
    `range_blocks` blocks), in chain order: what an auditor feeds `stats.monthly_statistics`
    to recompute the gateway's statistics without trusting its database."""
    last = int(w3.eth.block_number) if to_block is None else to_block
    by_topic = {}
    for name in EVENT_STEPS:
        event = registry.events[name]()
        by_topic[bytes.fromhex(str(event.topic).removeprefix("0x"))] = (name, event)
    found: list[ComplaintEvent] = []
    start = from_block
    while start <= last:
        end = min(start + range_blocks - 1, last)
        logs = w3.eth.get_logs({"address": registry.address, "fromBlock": start, "toBlock": end})
        for entry in logs:
            known = by_topic.get(bytes(entry["topics"][0])) if entry["topics"] else None
            if known is None:
                continue
            name, event = known
            decoded = event.process_log(entry)
            found.append(
                event_from_log(
                    name,
                    decoded["args"],
                    block_number=int(entry["blockNumber"]),
                    log_index=int(entry["logIndex"]),
                )
            )
        start = end + 1
    return sorted(found, key=lambda e: (e.block_number, e.log_index))
