// The "verified on chain" check, run in the customer's browser (docs/customer-page.md).
//
// It trusts neither the gateway nor the operator: from the bill's verification package it
// recomputes the bill hash from the document's canonical bytes (docs/bills.md "Canonical bytes"),
// its Merkle leaf and the path to the run's root, and reads that root from the BillRegistry named
// IN THE BILL over the chain's own JSON-RPC; it then takes a sample of the readings the bill uses,
// recomputes each reading's leaf from its signed canonical bytes (docs/reading-format.md; a
// version-2 leaf with the signed-bytes and signature hashes the evidence gives) and
// checks its proof against the batch root the ReadingLedger holds (the ReadingLedger's address is
// read from the BillRegistry, not taken from the package). ethers does the hashing and the ABI;
// JSON-RPC goes through fetch so an unreachable URL fails at once instead of being retried.
"use strict";

(function () {
  const { AbiCoder, Interface, getAddress, getBytes, keccak256, toUtf8Bytes } = ethers;

  const BILL_REGISTRY = new Interface([
    "function run(uint64 runId) view returns ((bytes32 root, uint32 billCount, uint64 periodStart, uint64 periodEnd, uint64 firstReadingBatch, uint64 lastReadingBatch, uint64 anchoredAt))",
    "function readingLedger() view returns (address)",
  ]);
  const READING_LEDGER = new Interface(["function batchRoot(uint256 batchId) view returns (bytes32)"]);
  const READING_FIELDS = ["bytes32", "uint256", "bytes32", "uint64", "uint64", "uint64", "uint64", "uint32"];
  const READING_SAMPLE = 6;

  /** JSON.parse keeping every integer exact as a BigInt (bill amounts may exceed 2^53). */
  function parseExact(text) {
    return JSON.parse(text, (key, value, context) => {
      if (typeof value !== "number") return value;
      if (context && typeof context.source === "string" && /^-?\d+$/.test(context.source)) {
        return BigInt(context.source);
      }
      if (Number.isSafeInteger(value)) return BigInt(value);
      throw new Error("a number with no exact integer form: " + (context ? context.source : value));
    });
  }

  /** The canonical JSON text of docs/bills.md: sorted keys, no whitespace, integers as written. */
  function canonical(value) {
    if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
    if (typeof value === "bigint") return value.toString();
    if (typeof value === "number") throw new Error("a number that is not an integer has no canonical form");
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }

  const billHashOf = (doc) => keccak256(toUtf8Bytes(canonical(doc)));
  // OpenZeppelin's standard leaf of one bytes32 / of the reading's ABI words: keccak(keccak(x)).
  const doubleHash = (bytes) => keccak256(keccak256(bytes));
  // A version-2 reading leaf (docs/reading-format.md): the tag, the canonical bytes' chain id and
  // fields (all but their first word), then the hashes of the signed bytes and of the signature's
  // fixed form, which the evidence gives. Those hashes only feed the leaf: the fields checked
  // come from the canonical bytes, so a wrong hash can only make the proof fail.
  const LEAF_TAG_V2 = keccak256(toUtf8Bytes("EnergyLedger.AnchoredReading.v2"));
  function readingLeaf(entry) {
    if (!entry.signed_hash || !entry.signature_hash) return doubleHash(entry.canonical); // version 1
    const fields = getBytes(entry.canonical).slice(32);
    return doubleHash(ethers.concat([LEAF_TAG_V2, fields, entry.signed_hash, entry.signature_hash]));
  }

  /** OpenZeppelin MerkleProof.processProof: sibling pairs hashed in sorted order. */
  function processProof(leaf, proof) {
    let node = leaf.toLowerCase();
    for (const sibling of proof) {
      const other = sibling.toLowerCase();
      const [a, b] = node < other ? [node, other] : [other, node];
      node = keccak256(ethers.concat([a, b]));
    }
    return node;
  }

  async function rpc(url, method, params) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      });
    } catch (error) {
      throw new Error("the JSON-RPC endpoint did not answer (" + error.message + ")");
    }
    const answer = await response.json();
    if (answer.error) throw new Error(method + ": " + answer.error.message);
    return answer.result;
  }

  async function call(url, to, iface, name, args) {
    const data = iface.encodeFunctionData(name, args);
    const result = await rpc(url, "eth_call", [{ to, data }, "latest"]);
    return iface.decodeFunctionResult(name, result);
  }

  function decodeReading(canonicalHex) {
    const bytes = getBytes(canonicalHex);
    if (bytes.length !== 256) throw new Error("canonical bytes are " + bytes.length + " bytes, not 256");
    const [, chainId, meterId, seq, timestamp, importWh, exportWh, status] = AbiCoder.defaultAbiCoder().decode(READING_FIELDS, bytes);
    return { chainId, meterId: meterId.toLowerCase(), seq, timestamp, importWh, exportWh, status };
  }

  /** Readings spread over the list: first, last and evenly between (at most READING_SAMPLE). */
  function sample(readings) {
    if (readings.length <= READING_SAMPLE) return readings.slice();
    const picked = new Set();
    for (let i = 0; i < READING_SAMPLE; i++) picked.add(Math.round((i * (readings.length - 1)) / (READING_SAMPLE - 1)));
    return [...picked].map((i) => readings[i]);
  }

  /** The batch the bill's reading_batches name for (meter, seq), or null. */
  function batchNamedByBill(doc, meter, seq) {
    for (const [m, first, last, batch] of doc.reading_batches) {
      if (m.toLowerCase() === meter && BigInt(first) <= seq && seq <= BigInt(last)) return BigInt(batch);
    }
    return null;
  }

  /**
   * Checks one bill. `claimedHash` is the hash the bill is known by (the listing's, the URL's);
   * `packageText` the raw text of GET /v1/bills/{hash}/evidence. Calls `report(item)` as each
   * item settles: {id, key, params, status: "pass" | "fail", detail}. Resolves to true when all pass.
   */
  async function verifyBill({ claimedHash, packageText, rpcUrl, report }) {
    let allPass = true;
    const settle = async (id, key, params, check) => {
      try {
        const detail = await check();
        report({ id, key, params, status: "pass", detail: detail || "" });
        return true;
      } catch (error) {
        allPass = false;
        report({ id, key, params, status: "fail", detail: error.message });
        return false;
      }
    };

    const pkg = parseExact(packageText);
    const doc = pkg.bill;
    let recomputed = null;
    let readingLedger = null;

    const chainOk = await settle("chain", "check.chain", {}, async () => {
      const chainId = BigInt(await rpc(rpcUrl, "eth_chainId", []));
      if (chainId !== BigInt(doc.chain_id)) throw new Error(`the endpoint serves chain ${chainId}, the bill is of chain ${doc.chain_id}`);
      return `chain ${chainId}`;
    });

    await settle("bill_hash", "check.billHash", {}, async () => {
      recomputed = billHashOf(doc);
      if (recomputed !== claimedHash.toLowerCase()) throw new Error(`the bill's bytes hash to ${recomputed}, not ${claimedHash}`);
      return recomputed;
    });

    await settle("bill_anchor", "check.billAnchor", { run: String(pkg.anchor.run_id) }, async () => {
      if (!chainOk) throw new Error("not checked: wrong or unreachable chain");
      const hash = recomputed || billHashOf(doc);
      const registry = getAddress(doc.bill_registry);
      const [run] = await call(rpcUrl, registry, BILL_REGISTRY, "run", [pkg.anchor.run_id]);
      const root = processProof(doubleHash(hash), pkg.anchor.proof);
      if (root !== run.root.toLowerCase()) throw new Error(`the proof leads to ${root}; run ${pkg.anchor.run_id} anchored ${run.root}`);
      const period = doc.period;
      if (BigInt(period.start) < run.periodStart || BigInt(period.end) > run.periodEnd) throw new Error("the bill's period lies outside the run's");
      readingLedger = getAddress(await call(rpcUrl, registry, BILL_REGISTRY, "readingLedger", []).then((r) => r[0]));
      return `root ${run.root}`;
    });

    const readings = sample(pkg.readings);
    if (readings.length === 0) {
      report({ id: "readings", key: "check.noReadings", params: {}, status: "pass", detail: "" });
    }
    const roots = new Map();
    for (const entry of readings) {
      const meter = String(entry.meter_id).toLowerCase();
      const params = { meter: meter.slice(0, 10) + "…", seq: String(entry.seq) };
      await settle(`reading-${meter}-${entry.seq}`, "check.reading", params, async () => {
        if (!readingLedger) throw new Error("not checked: the bill's anchor did not verify");
        const reading = decodeReading(entry.canonical);
        if (reading.chainId !== BigInt(doc.chain_id) || reading.meterId !== meter || reading.seq !== BigInt(entry.seq)) {
          throw new Error("the signed bytes are of another chain, meter or seq");
        }
        const batch = batchNamedByBill(doc, meter, reading.seq);
        if (batch === null || batch !== BigInt(entry.batch_id)) throw new Error("the bill names another batch for this reading");
        if (!roots.has(batch)) {
          roots.set(batch, (await call(rpcUrl, readingLedger, READING_LEDGER, "batchRoot", [batch]))[0].toLowerCase());
        }
        const root = processProof(readingLeaf(entry), entry.proof);
        if (root !== roots.get(batch)) throw new Error(`the proof leads to ${root}; batch ${batch} anchored ${roots.get(batch)}`);
        return `batch ${batch}`;
      });
    }
    return allPass;
  }

  window.LedgerVerify = { verifyBill, parseExact, canonical, billHashOf, decodeReading, processProof, readingLeaf };
})();
