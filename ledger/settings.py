"""Settings of the ledger and its gateway, read from `LEDGER_*` environment variables.

pydantic-settings would be the usual choice, but every release of it needs python-dotenv >= 0.21
while eth-brownie pins python-dotenv 0.16.0, so the two cannot share one environment. This module
does the small part we need with plain pydantic: one model, one prefix, validated types.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ledger.errors import ConfigError

ENV_PREFIX = "LEDGER_"

# The first account of the well-known development mnemonic
# "test test test test test test test test test test test junk", which both managed chains
# (Ganache and Anvil) are started with. Never use it on a chain that holds real value.
DEV_OPERATOR_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_MNEMONIC = "test test test test test test test test test test test junk"
# A secp256k1 private key is a number in [1, n-1], n the order of the curve's group.
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")

BODY_BYTES_PER_READING = 4096
"""Request-body room per reading of a batch: a native reading at its schema's longest (meter id
66, canonical 2048 and signature 512 characters) is about 2.7 KB of JSON, and a one-reading OCMF
record about 1 KB. Longer OCMF records (up to 16 KiB each) fit in smaller batches."""


class Settings(BaseModel):
    """Everything the ledger can be configured with. Field `x` is read from `LEDGER_X`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpc_url: str | None = Field(
        default=None,
        description="JSON-RPC endpoint of the chain. Unset: start a local chain under data_dir.",
    )
    chain: Literal["ganache", "anvil"] = Field(
        default="ganache", description="Which local chain to start when rpc_url is unset."
    )
    chain_port: int = Field(default=8545, ge=1, le=65535)
    # Read by ledger.chain.client.free_port from the environment itself (it runs where no
    # Settings exist); declared here so that the variable is accepted and checked at start.
    port_range: str | None = Field(
        default=None,
        description="LOW-HIGH: the ports that commands starting a chain of their own (the "
        "simulations) pick from, in turn (unset: any the system gives); processes given "
        "disjoint ranges never pick the same port.",
    )
    chain_id: int = Field(default=1337, ge=1, description="Chain id of a managed local chain.")
    data_dir: Path = Field(default=Path("data"), description="Database, deployments, chain data.")
    database_url: str | None = Field(
        default=None, description="sqlite:///path or postgresql://...; default data_dir/ledger.db"
    )
    # Operator key (issue 9, item 7): the development key only ever signs on a chain the
    # gateway started itself; against LEDGER_RPC_URL the key must be given.
    # Secrets are left out of the settings' repr, which reaches logs and test reports.
    operator_key: str | None = Field(
        default=None,
        repr=False,
        description="Private key that deploys, registers meters and anchors (64 hex digits, "
        "0x optional). Required when rpc_url is set; unset: the development key of the "
        "managed local chain.",
    )
    max_batch: int = Field(
        default=5000, ge=1, description="Most readings one POST /v1/readings may carry."
    )
    clock_skew_s: int = Field(
        default=300, ge=0, description="How far ahead of the gateway clock a reading may be (s)."
    )
    # Input bounds of the gateway (issue 9, items 5 and 8; docs/reading-format.md "Limits").
    max_seq_jump: int = Field(
        default=100_000,
        ge=1,
        lt=2**64,
        description="Most a reading's seq may be above its meter's latest stored seq; further "
        "is refused as seq_jump_too_large, so one bad reading cannot use up a meter's seqs.",
    )
    max_body_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Largest request body, in bytes; a larger one is refused with 413 "
        "request_too_large before it is parsed. Unset: LEDGER_MAX_BATCH x 4096 (20,480,000 "
        "for 5000), room for a full batch of native readings at their longest.",
    )
    # Admission under saturation (issue 15, item 2; ledger/readings/admission.py): refuse with
    # a time to come back rather than queue without bound.
    max_in_flight_batches: int = Field(
        default=8,
        ge=1,
        description="Most POST /v1/readings requests each gateway process handles at once; one "
        "more is refused before its body is read, with 429 gateway_saturated and Retry-After. "
        "Bounds ingestion's memory to about this many bodies (LEDGER_MAX_BODY_BYTES) a process.",
    )
    max_pending_readings: int = Field(
        default=1_000_000,
        ge=1,
        description="Most readings waiting for anchoring (in the database, every gateway on it) "
        "before POST /v1/readings is refused with 503 anchoring_backlog and Retry-After: the "
        "anchorer is that far behind.",
    )
    key_cache_meters: int = Field(
        default=100_000,
        ge=1,
        description="Meters whose key histories (and parsed keys) each gateway process keeps in "
        "memory, least recently used evicted first.",
    )
    key_revocation_poll_s: float = Field(
        default=5.0,
        gt=0,
        description="How often (s) each gateway process asks the chain for key revocations made "
        "elsewhere (another worker or gateway): a revocation from a past compromise time takes "
        "effect there within this long; the process that sends it applies it at once.",
    )
    anchor_enabled: bool = Field(
        default=True, description="Run the background anchorer (false: readings stay pending)."
    )
    anchor_interval_s: float = Field(
        default=1.0, gt=0, description="How often the anchorer looks for pending readings (s)."
    )
    anchor_max_readings: int = Field(
        default=10000, ge=1, le=2**32 - 1, description="Most readings in one anchored batch."
    )
    # Durability of anchoring (issue 9, item 10).
    confirmations: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Blocks on top of a batch's anchoring block before its proofs are final "
        "(and before a reorganisation is no longer watched for). 0 suits the managed local "
        "chain and instant-finality networks (QBFT/IBFT); see the README for real networks.",
    )
    # The event indexer (issue 10, item 4): chain events -> the read model that listings and the
    # key cache read (docs/market.md "Read model").
    indexer_poll_s: float = Field(
        default=1.0,
        gt=0,
        description="How often (s) the indexer asks the chain for new events; a listing lags "
        "the chain by at most this plus LEDGER_CONFIRMATIONS blocks. While the chain does not "
        "answer, passes are retried with a doubling delay (up to 30 s).",
    )
    indexer_range_blocks: int = Field(
        default=2000,
        ge=1,
        le=1_000_000,
        description="Most blocks in one eth_getLogs request (and one database transaction) of "
        "the indexer: lower it for a node that limits log ranges.",
    )
    market_slot_s: int = Field(
        default=3600, ge=60, description="Delivery slot of a newly deployed EnergyMarket (s)."
    )
    market_boundary_window_s: int = Field(
        default=900,
        ge=1,
        description="A slot boundary's reading must be taken less than this after it (s).",
    )
    market_settlement_window_s: int = Field(
        default=7 * 86_400, ge=1, description="How long after its slot a trade can be settled (s)."
    )
    # Fraud proofs (issue 13, item 3): how long a batch stays open to them before settlement
    # may use its readings.
    challenge_period_s: int = Field(
        default=300,
        ge=1,
        lt=2**64,
        description="Challenge period of a newly deployed ReadingLedger (s): a batch's readings "
        "settle trades only this long after its anchoring, time in which anyone may prove one "
        "forged on chain. Must be shorter than LEDGER_MARKET_SETTLEMENT_WINDOW_S.",
    )
    # Market hardening (issue 9, items 2 and 9): a floor under trade values, and how many
    # relayed writes each signer may have the operator pay for.
    market_min_trade_value: int = Field(
        default=10_000,
        ge=1,
        lt=2**256,
        description="Least value of an offer or take of a newly deployed EnergyMarket, in minor "
        "units of the 6-decimal settlement token (10,000 = 0.01).",
    )
    relay_quota_per_hour: int = Field(
        default=60,
        ge=1,
        description="Most relayed offers and takes per signer address in any 3,600 s, counted "
        "in the database across workers and gateways; more answer 429 relay_quota_exceeded.",
    )
    registrar_token: str | None = Field(
        default=None,
        repr=False,
        description="Bearer token of the registrar API routes; unset: those routes answer 403.",
    )
    operator_token: str | None = Field(
        default=None,
        repr=False,
        description="Bearer token of the operator's billing routes (tariffs, issuing runs, "
        "bills); unset: those routes answer 403.",
    )
    billing_workers: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, 4),
        ge=1,
        le=64,
        description="Processes an issuing run of 200 customers or more computes bills in "
        "(1: in the calling process only); default: one per CPU core, at most 4.",
    )
    billing_time_zone: str = Field(
        default="UTC",
        description="IANA time zone whose calendar months `--period YYYY-MM` bills (a "
        "tariff's band hours use the tariff's own zone).",
    )
    # Customers' sign-in (api/routes/auth.py, docs/access.md).
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://[^/?#\s]+/?$",
        description="Scheme, host and port clients reach the gateway at: a Sign-In with "
        "Ethereum message must name its host[:port] as domain and this URL as URI.",
    )
    session_secret: str | None = Field(
        default=None,
        repr=False,
        min_length=32,
        description="Key of the session tokens (HS256), at least 32 characters; unset: 32 "
        "random bytes kept in data_dir/session-secret (mode 0600), created once.",
    )
    session_ttl_s: int = Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        description="Lifetime of a session token from sign-in, in seconds.",
    )
    # Complaints' service-level targets (ledger/complaints/sla.py, docs/complaints.md).
    complaint_response_target_s: int = Field(
        default=30 * 60,
        ge=1,
        description="Seconds from a complaint's opening (or reopening) within which the "
        "operator's first response is due.",
    )
    complaint_assignment_target_s: int = Field(
        default=2 * 3600,
        ge=1,
        description="Seconds from a complaint's opening (or reopening) within which a named "
        "handler is due.",
    )
    complaint_plan_target_s: int = Field(
        default=8 * 3600,
        ge=1,
        description="Seconds from a complaint's opening (or reopening) within which the "
        "solution plan is due.",
    )
    complaint_targets: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Targets of particular subject kinds, JSON: "
        '{"outage": {"response_s": 900, "assignment_s": 3600}}; kinds bill_line, reading, '
        "trade, outage, other; keys response_s, assignment_s, plan_s (seconds, at least 1); "
        "a step not named keeps the target above.",
    )
    # Operating the gateway (issue 15, item 4; README "Operating the gateway").
    log_format: Literal["json", "console"] = Field(
        default="json",
        description="How `ledger serve` writes its log lines on stderr: json (one object a "
        "line, for a log collector) or console (one readable line each).",
    )
    metrics_token: str | None = Field(
        default=None,
        repr=False,
        description="Bearer token a Prometheus scraper reads GET /metrics with, and nothing "
        "else; the operator token reads it too. Unset with no operator token: /metrics "
        "answers 403.",
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Gateway worker processes; unset: one per CPU core, at most 4.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Reads settings from `LEDGER_*` variables; unknown or invalid values are a ConfigError."""
        source = os.environ if environ is None else environ
        values = {
            name[len(ENV_PREFIX) :].lower(): value
            for name, value in source.items()
            if name.startswith(ENV_PREFIX) and value != ""
        }
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                (f"{ENV_PREFIX}{str(e['loc'][0]).upper()}: " if e["loc"] else "") + e["msg"]
                for e in error.errors()
            )
            raise ConfigError(f"invalid settings: {problems}") from error

    @field_validator("port_range")
    @classmethod
    def _port_range_is_low_high(cls, text: str | None) -> str | None:
        if text is not None:
            parse_port_range(text)
        return text

    @field_validator("operator_key")
    @classmethod
    def _operator_key_is_a_private_key(cls, key: str | None) -> str | None:
        # The message never repeats the value: it is a secret, and it reaches logs.
        if key is None:
            return None
        if not _HEX_KEY.fullmatch(key.strip()):
            raise ValueError(
                "not a private key: expected 64 hex digits (32 bytes), optionally after 0x"
            )
        if not 0 < int(key.strip().removeprefix("0x"), 16) < _SECP256K1_ORDER:
            raise ValueError("not a private key: out of the secp256k1 range")
        return key.strip()

    @field_validator("billing_time_zone")
    @classmethod
    def _billing_time_zone_is_known(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{name!r} is not an IANA time zone name") from error
        return name

    @field_validator("complaint_targets", mode="before")
    @classmethod
    def _complaint_targets_from_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"not JSON: {error.msg}") from error
        return value

    @field_validator("complaint_targets")
    @classmethod
    def _complaint_targets_name_kinds_and_steps(
        cls, value: dict[str, dict[str, int]]
    ) -> dict[str, dict[str, int]]:
        kinds = ("bill_line", "reading", "trade", "outage", "other")
        keys = ("response_s", "assignment_s", "plan_s")
        for kind, targets in value.items():
            if kind not in kinds:
                raise ValueError(f"{kind!r} is not a subject kind ({', '.join(kinds)})")
            for key, seconds in targets.items():
                if key not in keys:
                    raise ValueError(f"{kind}.{key} is not a target ({', '.join(keys)})")
                if seconds < 1:
                    raise ValueError(f"{kind}.{key} must be at least 1 second")
        return value

    @model_validator(mode="after")
    def _operator_key_given_for_external_chain(self) -> Settings:
        if self.rpc_url is not None and self.operator_key is None:
            raise ValueError(
                "LEDGER_OPERATOR_KEY must be set when LEDGER_RPC_URL is: the development key is "
                "public and only signs on the chain the gateway starts itself"
            )
        return self

    @model_validator(mode="after")
    def _boundary_window_within_slot(self) -> Settings:
        # The EnergyMarket refuses this too; saying it here names the variable.
        if self.market_boundary_window_s > self.market_slot_s:
            raise ValueError("LEDGER_MARKET_BOUNDARY_WINDOW_S must not exceed LEDGER_MARKET_SLOT_S")
        # The EnergyMarket's constructor refuses it too (EnergyMarketChallengeNotShorterThanWindow).
        if self.challenge_period_s >= self.market_settlement_window_s:
            raise ValueError(
                "LEDGER_CHALLENGE_PERIOD_S must be shorter than LEDGER_MARKET_SETTLEMENT_WINDOW_S"
            )
        return self

    @property
    def signing_key(self) -> str:
        """The operator's private key: LEDGER_OPERATOR_KEY, or on a managed chain (no rpc_url)
        the development key that chain is started with."""
        return self.operator_key if self.operator_key is not None else DEV_OPERATOR_KEY

    @property
    def worker_count(self) -> int:
        """How many gateway processes serve requests (`workers`, or the core count up to 4).

        Checking a signature holds Python's GIL for most of a reading's cost, so one process
        uses about one core; each worker is a full gateway on the same database and chain.
        """
        if self.workers is not None:
            return self.workers
        return max(1, min(os.cpu_count() or 1, 4))

    @property
    def body_limit_bytes(self) -> int:
        """The largest request body accepted: `max_body_bytes`, or room for `max_batch` readings."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.max_batch * BODY_BYTES_PER_READING

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None when the database is PostgreSQL."""
        url = self.database_url
        if url is None:
            return self.data_dir / "ledger.db"
        if url.startswith("sqlite:///"):
            return Path(url[len("sqlite:///") :])
        return None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests override this dependency)."""
    return Settings.from_env()


def parse_port_range(text: str) -> tuple[int, int]:
    """LEDGER_PORT_RANGE's "LOW-HIGH" (both included) as (low, high).

    Raises:
        ValueError: Not two port numbers from 1024 to 65535, the first not above the second.
    """
    low_text, _, high_text = text.strip().partition("-")
    try:
        low, high = int(low_text), int(high_text)
    except ValueError:
        low, high = 0, -1
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"expected LOW-HIGH, two ports from 1024 to 65535, not {text!r}")
    return low, high
