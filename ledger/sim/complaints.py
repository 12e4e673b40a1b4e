"""A simulated month of complaints: answered on time, late and never, on a chain whose clock
starts before the month.

`ledger sim complaints` (and `simulated_complaints`, for tests) runs one calendar month (UTC) on
its own Anvil and gateway (`ledger.sim.harness.local_gateway`), all over HTTP as the real
parties would:

    1. customers    accounts derived from the seed, each signed in with Sign-In with Ethereum;
                    they hold no ether: every step of theirs is signed (EIP-712) and relayed by
                    the gateway, as docs/complaints.md tells a wallet to do.
    2. the month    `--complaints` complaints opened at times spread over the month, each with
                    a behaviour drawn from the seed (`BEHAVIOURS`): the operator's steps on
                    time, late, partly late, never; some resolved complaints are rated, some
                    reopened and answered again. Every action is put on one time line; the
                    chain's clock is moved to each action's time (evm_increaseTime) before it
                    is sent, so its block time is what the action's time is.
    3. the end      the clock is moved to the month's end plus `--after` seconds (default 1 day)
                    so complaints never answered are overdue, and the operator's view of the
                    monthly statistics (the auditors' route) is fetched.

The summary (JSON) lists every complaint with its behaviour, and the statistics: count, median
and p90 of each step's time, share meeting target and the negative list.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger.complaints.signing import (
    ComplaintDomain,
    open_typed_data,
    rate_typed_data,
    reopen_typed_data,
)
from ledger.complaints.stats import month_bounds
from ledger.market.client import MarketClient
from ledger.market.orders import sign_typed_data
from ledger.node import LedgerNode
from ledger.sim.fleet import SimulationError
from ledger.sim.harness import local_gateway
from ledger.sim.market_day import CHAIN_LEAD_S, advance_chain_to

Progress = Callable[[str], None]

MINUTE = 60
HOUR = 3600
DAY = 86_400
SIGNATURE_LIFETIME_S = HOUR
KINDS = ("bill_line", "reading", "trade", "outage", "other")

BEHAVIOURS: dict[str, tuple[int | None, int | None, int | None, int | None]] = {
    # Seconds from the round's start to respond, assign, plan, resolve (None: never).
    "on_time": (10 * MINUTE, 1 * HOUR, 5 * HOUR, 1 * DAY),
    "late": (50 * MINUTE, 3 * HOUR, 11 * HOUR, 2 * DAY),
    "late_plan": (20 * MINUTE, 90 * MINUTE, 12 * HOUR, 3 * DAY),
    "unplanned": (25 * MINUTE, 4 * HOUR, None, None),
    "never": (None, None, None, None),
}
"""What the operator does with a complaint; default targets 30 min / 2 h / 8 h."""
OPERATOR_STEPS = ("respond", "assign", "plan", "resolve")
HANDLERS = ("STAFF-0007", "STAFF-0012", "STAFF-0031")


@dataclass(frozen=True)
class PlannedComplaint:
    """One complaint of the month: who opens it when, about what, and what happens to it."""

    number: int  # 1.. in opening order (the complaint id on a new chain)
    customer: int  # index into the customers
    opens_at: int
    kind: str
    behaviour: str
    rating: int | None  # rated after the resolution (resolved complaints only)
    reopened_after_s: int | None  # reopened this long after the resolution (then on time)


def plan_complaints(month: str, count: int, customers: int, seed: int) -> list[PlannedComplaint]:
    """The month's complaints, drawn from `seed`: every behaviour at least once when `count`
    allows, openings spread over the month's first 27 days (so even a late answer falls in it)."""
    start, _ = month_bounds(month)
    rng = random.Random(seed)
    behaviours = list(BEHAVIOURS)
    chosen = [behaviours[i % len(behaviours)] for i in range(count)]
    rng.shuffle(chosen)
    openings = sorted(rng.randrange(start + HOUR, start + 27 * DAY) for _ in range(count))
    planned = []
    for number, (opens_at, behaviour) in enumerate(zip(openings, chosen, strict=True), start=1):
        resolves = BEHAVIOURS[behaviour][3] is not None
        reopens = resolves and number % 4 == 0
        planned.append(
            PlannedComplaint(
                number=number,
                customer=rng.randrange(customers),
                opens_at=opens_at,
                kind=KINDS[rng.randrange(len(KINDS))],
                behaviour=behaviour,
                rating=rng.randint(1, 5) if resolves and not reopens else None,
                reopened_after_s=2 * HOUR if reopens else None,
            )
        )
    return planned


def customer_accounts(seed: int, count: int) -> list[LocalAccount]:
    """Customers' keys derived from the seed (never funded: the gateway relays for them)."""
    return [
        Account.from_key(keccak(text=f"energy ledger complaints customer {seed} {i}"))
        for i in range(count)
    ]


class Party:
    """One caller of the gateway: a customer signed in with SIWE, or the operator's token."""

    def __init__(self, url: str, token: str, account: LocalAccount | None = None) -> None:
        self.client = MarketClient(url, token=token)
        self.account = account

    @classmethod
    def signed_in(cls, url: str, account: LocalAccount, public_url: str) -> Party:
        """Signs `account` in (EIP-4361 over personal_sign, as docs/access.md describes)."""
        anonymous = MarketClient(url)
        nonce = anonymous.request("POST", "/v1/auth/nonce")
        issued = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        domain = public_url.split("://", 1)[1].rstrip("/")
        message = "\n".join(
            [
                f"{domain} wants you to sign in with your Ethereum account:",
                account.address,
                "",
                "Sign in to the energy ledger.",
                "",
                f"URI: {public_url.rstrip('/')}",
                "Version: 1",
                f"Chain ID: {nonce['chain_id']}",
                f"Nonce: {nonce['nonce']}",
                f"Issued At: {issued}",
            ]
        )
        signed = Account.sign_message(encode_defunct(text=message), private_key=account.key)
        session = anonymous.request(
            "POST",
            "/v1/auth/sign-in",
            {"message": message, "signature": "0x" + bytes(signed.signature).hex()},
        )
        return cls(url, str(session["token"]), account)

    def signing(self, chain_time: int) -> tuple[ComplaintDomain, int, int]:
        context = self.client.request("GET", "/v1/complaints/signing")
        d = context["domain"]
        domain = ComplaintDomain(d["name"], d["version"], d["chainId"], d["verifyingContract"])
        return domain, int(context["nonce"]), chain_time + SIGNATURE_LIFETIME_S

    def _signed(self, typed: dict[str, Any], deadline: int) -> dict[str, Any]:
        assert self.account is not None
        signature = sign_typed_data(self.account.key, typed)
        return {
            "customer": self.account.address,
            "deadline": deadline,
            "signature": "0x" + signature.hex(),
        }

    def open(self, chain_time: int, kind: str, subject_ref: bytes, text: str) -> Any:
        assert self.account is not None
        domain, nonce, deadline = self.signing(chain_time)
        typed = open_typed_data(
            domain,
            kind=KINDS.index(kind),
            subject_ref=subject_ref,
            text_hash=keccak(text.encode("utf-8")),
            customer=self.account.address,
            nonce=nonce,
            deadline=deadline,
        )
        body = {
            **self._signed(typed, deadline),
            "subject_kind": kind,
            "subject_ref": "0x" + subject_ref.hex(),
            "text": text,
        }
        return self.client.request("POST", "/v1/complaints", body)

    def rate(self, chain_time: int, complaint_id: int, rating: int) -> Any:
        assert self.account is not None
        domain, nonce, deadline = self.signing(chain_time)
        typed = rate_typed_data(
            domain,
            complaint_id=complaint_id,
            rating=rating,
            customer=self.account.address,
            nonce=nonce,
            deadline=deadline,
        )
        body = {**self._signed(typed, deadline), "rating": rating}
        return self.client.request("POST", f"/v1/complaints/{complaint_id}/rate", body)

    def reopen(self, chain_time: int, complaint_id: int, text: str) -> Any:
        assert self.account is not None
        domain, nonce, deadline = self.signing(chain_time)
        typed = reopen_typed_data(
            domain,
            complaint_id=complaint_id,
            text_hash=keccak(text.encode("utf-8")),
            customer=self.account.address,
            nonce=nonce,
            deadline=deadline,
        )
        body = {**self._signed(typed, deadline), "text": text}
        return self.client.request("POST", f"/v1/complaints/{complaint_id}/reopen", body)

    def step(self, complaint_id: int, step: str, text: str, handler: str | None = None) -> Any:
        body: dict[str, Any] = {"step": step, "text": text}
        if handler is not None:
            body["handler"] = handler
        return self.client.request("POST", f"/v1/complaints/{complaint_id}/steps", body)


@dataclass(frozen=True)
class _Action:
    at: int
    order: int  # ties: in planning order
    complaint: PlannedComplaint
    what: str  # 'open', an operator step, 'rate', 'reopen', or 'round2:<step>'


def _time_line(planned: list[PlannedComplaint]) -> list[_Action]:
    actions: list[_Action] = []

    def add(at: int, complaint: PlannedComplaint, what: str) -> None:
        actions.append(_Action(at, len(actions), complaint, what))

    for complaint in planned:
        add(complaint.opens_at, complaint, "open")
        delays = BEHAVIOURS[complaint.behaviour]
        for step, delay in zip(OPERATOR_STEPS, delays, strict=True):
            if delay is not None:
                add(complaint.opens_at + delay, complaint, step)
        resolved = delays[3]
        if resolved is None:
            continue
        if complaint.rating is not None:
            add(complaint.opens_at + resolved + HOUR, complaint, "rate")
        if complaint.reopened_after_s is not None:
            reopened = complaint.opens_at + resolved + complaint.reopened_after_s
            add(reopened, complaint, "reopen")
            # The second round is answered on time.
            for step, delay in zip(OPERATOR_STEPS, BEHAVIOURS["on_time"], strict=True):
                assert delay is not None
                add(reopened + delay, complaint, f"round2:{step}")
    return sorted(actions, key=lambda a: (a.at, a.order))


def run_complaints(
    url: str,
    node: LedgerNode,
    *,
    month: str,
    complaints: int,
    customers: int,
    seed: int,
    after_s: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Plays the month's complaints against the gateway at `url` (see the module docstring)."""
    planned = plan_complaints(month, complaints, customers, seed)
    public_url = node.settings.public_url
    accounts = customer_accounts(seed, customers)
    parties = [Party.signed_in(url, account, public_url) for account in accounts]
    token = node.settings.operator_token
    if token is None:
        raise SimulationError("the simulated gateway has no operator token")
    operator = Party(url, token)
    ids: dict[int, int] = {}
    for action in _time_line(planned):
        chain_time = advance_chain_to(node.chain, action.at)
        complaint = action.complaint
        customer = parties[complaint.customer]
        what = action.what.removeprefix("round2:")
        if what == "open":
            subject = keccak(text=f"{complaint.kind} {complaint.number}")
            text = f"Complaint {complaint.number} about a {complaint.kind.replace('_', ' ')}."
            answer = customer.open(chain_time, complaint.kind, subject, text)
            ids[complaint.number] = int(answer["complaint_id"])
        elif what == "rate":
            assert complaint.rating is not None
            customer.rate(chain_time, ids[complaint.number], complaint.rating)
        elif what == "reopen":
            customer.reopen(chain_time, ids[complaint.number], "The fix did not hold.")
        else:
            handler = HANDLERS[complaint.number % len(HANDLERS)] if what == "assign" else None
            operator.step(
                ids[complaint.number], what, f"{what}: complaint {complaint.number}", handler
            )
    _, end = month_bounds(month)
    advance_chain_to(node.chain, end + after_s)
    statistics = operator.client.request("GET", f"/v1/complaints/statistics?month={month}")
    if progress is not None:
        progress(f"{len(planned)} complaints, {len(statistics['breaches'])} breaches")
    return {
        "month": month,
        "complaints": [
            {
                "complaint_id": ids[c.number],
                "customer": accounts[c.customer].address,
                "opened_at": c.opens_at,
                "kind": c.kind,
                "behaviour": c.behaviour,
                "rating": c.rating,
                "reopened": c.reopened_after_s is not None,
            }
            for c in planned
        ],
        "statistics": statistics,
    }


@contextmanager
def simulated_complaints(
    data_dir: Path,
    *,
    month: str,
    complaints: int = 15,
    customers: int = 6,
    seed: int = 1,
    after_s: int = DAY,
    progress: Progress | None = None,
) -> Iterator[tuple[dict[str, Any], str, LedgerNode]]:
    """Runs the month on a new Anvil (clock from 2 hours before the month) and gateway in
    `data_dir`; yields (summary, gateway URL, node) while both still run."""
    if complaints < 1 or customers < 1:
        raise SimulationError("a month of complaints needs at least one complaint and customer")
    start, end = month_bounds(month)
    if end > time.time():
        raise SimulationError(f"{month} is not over: simulate a month in the past")
    with local_gateway(data_dir, chain_start=start - CHAIN_LEAD_S, chain_kind="anvil") as (
        url,
        node,
    ):
        summary = run_complaints(
            url,
            node,
            month=month,
            complaints=complaints,
            customers=customers,
            seed=seed,
            after_s=after_s,
            progress=progress,
        )
        yield summary, url, node


def last_full_month(now: float | None = None) -> str:
    """The last calendar month (UTC) that is over."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    year, month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    return f"{year:04d}-{month:02d}"


def run_local_complaints(*, month: str | None = None, **options: Any) -> dict[str, Any]:
    """`ledger sim complaints`: the month in a temporary directory; returns the summary."""
    with tempfile.TemporaryDirectory(prefix="ledger-sim-complaints-") as temporary:
        with simulated_complaints(Path(temporary), month=month or last_full_month(), **options) as (
            summary,
            _,
            _,
        ):
            return summary
