"""The chain: starting a local node, connecting to any JSON-RPC endpoint, sending transactions.

A managed local chain (Ganache 7.9.2 or Anvil, both from node_modules) is started with the
development mnemonic and, for Ganache, a database under the data directory, so a restart keeps
its blocks. Any other EVM endpoint is used by URL. Transactions are signed locally with the
operator key, so the same code works against a node that holds no unlocked accounts. Every
gateway process (and the `ledger` command beside it) sends with that key, so the nonce read and the
send are one critical section per account across processes: see ledger/chain/txsender.py.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.types import RPCEndpoint, TxParams, TxReceipt

from ledger.chain.compiler import PROJECT_ROOT
from ledger.chain.txsender import ProcessSenderLock, SenderLock
from ledger.errors import ChainUnavailable, ContractRevert, ToolchainError
from ledger.settings import DEV_MNEMONIC, parse_port_range

NODE_BIN = PROJECT_ROOT / "node_modules" / ".bin"
# Ganache's default block gas price is fine, but brownie's development network sends 0, which a
# node with a base fee refuses; every managed chain gets an explicit 1 gwei floor.
GAS_PRICE_WEI = 1_000_000_000
# The gas limit of contract calls (not deployments). Ganache's eth_estimateGas runs a call many
# times over (a binary search), about 0.3 s per market transaction; one eth_call finds the same
# custom-error reverts, and a limit is only a cap: a transaction pays for the gas it uses. The
# dearest call, a settlement with four boundaries, uses about 0.3 M.
CALL_GAS_LIMIT = 3_000_000


def anvil_binary() -> Path:
    """The native anvil binary from its npm platform package.

    package.json names only the linux-x64 package: npm 11 leaves the other platforms' optional
    packages out of package-lock.json, after which `npm ci` refuses the lock. The binary is started
    directly (not through @foundry-rs/anvil's node launcher), so our SIGINT reaches anvil itself
    and it writes its state file before exiting.
    """
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    package = f"anvil-{sys.platform}-{arch}"
    return PROJECT_ROOT / "node_modules" / "@foundry-rs" / package / "bin" / "anvil"


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port yet."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


PORT_RANGE_ENV = "LEDGER_PORT_RANGE"
"""Where `free_port` picks from, as "LOW-HIGH" (both included); unset: wherever the system does."""

_port_turn = random.SystemRandom().randrange(1 << 16)  # this process's place in its range
_port_turn_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, for a chain or gateway this
    process is about to start.

    With LEDGER_PORT_RANGE ("20000-21499"), the ports of that range in turn from a random start:
    processes given disjoint ranges never pick the same port, where the system's picks (random
    over some 28,000 ports) collide now and then between processes that start servers at the same
    moment, a chain then answering for another. The test suite gives each of its parallel workers
    a range of its own.

    Raises:
        ToolchainError: LEDGER_PORT_RANGE is malformed, or nothing in it is free.
    """
    global _port_turn
    spec = os.environ.get(PORT_RANGE_ENV, "").strip()
    if not spec:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    try:
        low, high = parse_port_range(spec)
    except ValueError as error:
        raise ToolchainError(f"{PORT_RANGE_ENV}: {error}") from None
    size = high - low + 1
    for _ in range(size):
        with _port_turn_lock:
            port = low + _port_turn % size
            _port_turn += 1
        if port_is_free("127.0.0.1", port):
            return port
    raise ToolchainError(f"no free port in {PORT_RANGE_ENV}={spec}")


@dataclass
class LocalChain:
    """A Ganache or Anvil process on 127.0.0.1, started and stopped by the ledger.

    Attributes:
        kind: "ganache" or "anvil".
        port: TCP port of its JSON-RPC endpoint.
        chain_id: The chain id it reports.
        db_path: Where it keeps its state (Ganache: its database; Anvil: a state file), so a
            restart finds the same contracts and data. None: a throw-away chain.
        start_time: Unix time of the first block (the chain's clock runs on from there); None:
            now. A clock in the past lets a simulation trade a past day ahead of time and then
            post that day's readings, which the gateway accepts because they are not in the future.
    """

    kind: str
    port: int
    chain_id: int = 1337
    db_path: Path | None = None
    log_path: Path | None = None
    start_time: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The command line that starts this chain."""
        if self.kind == "ganache":
            cmd = [
                str(NODE_BIN / "ganache"),
                "--server.host", "127.0.0.1",
                "--server.port", str(self.port),
                "--chain.chainId", str(self.chain_id),
                # Ganache 7.9.2 knows hardforks up to shanghai; contracts are compiled for it.
                "--chain.hardfork", "shanghai",
                "--wallet.mnemonic", DEV_MNEMONIC,
                "--wallet.totalAccounts", "10",
                "--miner.defaultGasPrice", hex(GAS_PRICE_WEI),
                "--logging.quiet",
            ]  # fmt: skip
            if self.db_path is not None:
                cmd += ["--database.dbPath", str(self.db_path)]
            if self.start_time is not None:
                cmd += ["--chain.time", str(self.start_time * 1000)]  # milliseconds
            return cmd
        if self.kind == "anvil":
            cmd = [
                str(anvil_binary()),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--chain-id", str(self.chain_id),
                "--hardfork", "shanghai",
                "--mnemonic", DEV_MNEMONIC,
                "--gas-price", str(GAS_PRICE_WEI),
                "--silent",
            ]  # fmt: skip
            if self.db_path is not None:
                # Anvil loads this file at start and writes it on exit and every few seconds.
                cmd += ["--state", str(self.db_path / "state.json"), "--state-interval", "5"]
            if self.start_time is not None:
                cmd += ["--timestamp", str(self.start_time)]
            return cmd
        raise ToolchainError(f"unknown chain kind {self.kind!r} (expected ganache or anvil)")

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Starts the chain and waits until it answers JSON-RPC.

        Raises:
            ToolchainError: the port is taken, the binary is missing, or the chain never answered.
        """
        in_use = ToolchainError(
            f"port {self.port} is already in use: stop what listens there, or set "
            "LEDGER_CHAIN_PORT to another port, or LEDGER_RPC_URL to use that node"
        )
        if not port_is_free("127.0.0.1", self.port):
            raise in_use
        cmd = self.command()
        if shutil.which(cmd[0]) is None:
            raise ToolchainError(f"{cmd[0]} not found: run `make bootstrap` (npm ci) first")
        if self.db_path is not None:
            self.db_path.mkdir(parents=True, exist_ok=True)
        if self.log_path is not None:
            # 0600, like everything the ledger writes into its data directory.
            log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._log = os.fdopen(log_fd, "ab")
        self.process = subprocess.Popen(
            cmd,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Ctrl-C in a terminal reaches only us; we stop the chain after the gateway, in order.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if not port_is_free("127.0.0.1", self.port):
                    raise in_use  # another process bound it between the check and our start
                raise ToolchainError(
                    f"{self.kind} exited with code {self.process.returncode} at start"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if answers_rpc(self.rpc_url):
                # A node that another process started on the same port in the same moment
                # answers too, while ours has yet to fail binding it: the ledger would deploy
                # into a stranger's chain (and race its nonces). Only our own listener counts.
                if listens_on(self.process.pid, self.port) is False:
                    self.stop()
                    raise in_use
                return
            time.sleep(0.1)
        self.stop()
        raise ToolchainError(f"{self.kind} did not answer on {self.rpc_url} within {timeout_s}s")

    def stop(self, *, timeout_s: float = 20.0) -> None:
        """Stops the chain gracefully (SIGINT lets it flush its state), then kills it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds a listening TCP socket on `port`, from Linux's /proc (the
    chains are started directly, so the listener is the started process itself); None where
    /proc cannot tell (another system)."""
    listening: set[str] = set()
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as rows:
                next(rows)  # the column names
                for row in rows:
                    fields = row.split()
                    # local address "ADDR:PORT" in hex, state 0A = LISTEN, then the inode
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        listening.add(f"socket:[{fields[9]}]")
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except (OSError, IndexError, ValueError):
        return None
    for descriptor in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{descriptor}") in listening:
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def answers_rpc(rpc_url: str) -> bool:
    """Whether a JSON-RPC node answers at rpc_url."""
    try:
        return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 2})).is_connected()
    except Exception:  # noqa: BLE001 - any failure here just means "not up yet"
        return False


def read_only_web3(rpc_url: str, *, timeout_s: float) -> Web3:
    """A Web3 for reading a chain (verifiers, the audit) without web3's validation middleware,
    which asks the node for its chain id before every `eth_call` (to check a transaction's
    chain id, which a read has none of): half the requests of a read-only tool."""
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
    w3.middleware_onion.remove("validation")
    return w3


def connect(
    rpc_url: str,
    operator_key: str,
    *,
    timeout_s: float = 10.0,
    sender_lock: SenderLock | None = None,
) -> Chain:
    """Connects to a JSON-RPC endpoint and prepares the operator account for signing.

    Args:
        rpc_url: The JSON-RPC endpoint.
        operator_key: The operator's private key (hex).
        timeout_s: How long one JSON-RPC request may take.
        sender_lock: Orders this Chain's sends with every other sender of the same accounts
            (other processes, other gateways); None: only this process sends from them.

    Raises:
        ChainUnavailable: the endpoint does not answer.
    """
    # web3 asks for eth_chainId around every call otherwise. Only that is cached: a node's chain
    # id never changes, while blocks can (a dev chain's evm_revert, a restarted Ganache).
    w3 = Web3(
        HTTPProvider(
            rpc_url,
            request_kwargs={"timeout": timeout_s},
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
    )
    try:
        chain_id = w3.eth.chain_id
    except Exception as error:  # noqa: BLE001 - requests/aiohttp/JSON errors all mean unreachable
        raise ChainUnavailable(rpc_url=rpc_url, reason=str(error)) from error
    operator: LocalAccount = Account.from_key(operator_key)
    return Chain(
        w3=w3,
        rpc_url=rpc_url,
        chain_id=chain_id,
        operator=operator,
        sender_lock=sender_lock or ProcessSenderLock(),
    )


@dataclass
class Chain:
    """A connected chain and the operator account that signs for the ledger."""

    w3: Web3
    rpc_url: str
    chain_id: int
    operator: LocalAccount
    error_abis: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    # Other processes and gateways that send from the same accounts (ledger/chain/txsender.py).
    sender_lock: SenderLock = field(default_factory=ProcessSenderLock, repr=False)
    # Request threads (meter registration) and the anchorer send from the same account: the
    # nonce read and the send must not interleave, or two transactions get the same nonce.
    _send_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def learn_errors(self, abi: list[dict[str, Any]]) -> None:
        """Registers the custom errors of a contract ABI, so reverts decode to their names."""
        for entry in abi:
            if entry.get("type") == "error":
                types = ",".join(_abi_type(i) for i in entry["inputs"])
                selector = keccak(text=f"{entry['name']}({types})")[:4]
                self.error_abis[selector] = entry

    def transact(
        self, call: ContractFunction | ContractConstructor, *, sender: LocalAccount | None = None
    ) -> TxReceipt:
        """Signs and sends a contract call (or deployment) and waits for its receipt.

        The transaction is built and signed locally, so it works against any node. A custom-error
        revert, at gas estimation or in the mined receipt, is raised as ContractRevert carrying the
        error's name and decoded arguments.

        The nonce read, the pre-check, signing and sending run under this process's thread lock
        and the account's cross-process sender lock; waiting for the receipt does not, since the
        node's pending nonce counts the transaction once it has it.
        """
        account = sender or self.operator
        with self._send_lock, self.sender_lock.hold(account.address):
            params: TxParams = {
                "from": account.address,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                "chainId": self.chain_id,
            }
            try:
                if isinstance(call, ContractFunction):
                    call.call({"from": account.address}, "pending")  # reverts like the send would
                    params["gas"] = CALL_GAS_LIMIT
                tx = call.build_transaction(params)
            except (ContractCustomError, ContractLogicError, ContractPanicError) as error:
                raise self.decode_revert(error) from error
            signed = account.sign_transaction(cast(dict[str, Any], tx))
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise self._explain_failed(tx, receipt)
        return receipt

    def _explain_failed(self, tx: Any, receipt: TxReceipt) -> ContractRevert:
        """Replays a mined-but-reverted transaction as a call to learn its custom error.

        The pre-check call runs against the pending block, whose time a node only guesses, so a
        transaction can pass it and still revert when mined (for example on a time check). The
        replay runs on the state before the block that mined it.
        """
        replay = cast(TxParams, {k: tx[k] for k in ("from", "to", "data", "value") if k in tx})
        try:
            self.w3.eth.call(replay, receipt["blockNumber"] - 1)
        except (ContractCustomError, ContractLogicError, ContractPanicError) as error:
            return self.decode_revert(error)
        return ContractRevert(error_name="UnknownRevert", raw=receipt["transactionHash"].hex())

    def call(self, call: ContractFunction) -> Any:
        """Runs a view call, decoding custom-error reverts into ContractRevert."""
        try:
            return call.call()
        except (ContractCustomError, ContractLogicError, ContractPanicError) as error:
            raise self.decode_revert(error) from error

    def decode_revert(self, error: Exception) -> ContractRevert:
        """Turns a web3 revert exception into a ContractRevert with the custom error's name."""
        data = getattr(error, "data", None)
        if isinstance(data, dict):  # Ganache puts the revert data under "result"
            data = data.get("result") or data.get("data")
        raw = data if isinstance(data, str) else ""
        payload = bytes.fromhex(raw[2:]) if raw.startswith("0x") else b""
        if len(payload) >= 4 and payload[:4] in self.error_abis:
            entry = self.error_abis[payload[:4]]
            types = [_abi_type(i) for i in entry["inputs"]]
            args = tuple(abi_decode(types, payload[4:]))
            return ContractRevert(error_name=entry["name"], args=args, raw=raw)
        return ContractRevert(error_name="UnknownRevert", raw=raw or str(error))


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple') :]}"
    return str(param["type"])
