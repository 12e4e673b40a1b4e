// The customer page: sign in (Sign-In with Ethereum through window.ethereum, or an access token),
// then two tabs: the bills (each bill with its lines, the "verified on chain" panel (verify.js),
// usage charts, trades and downloads) and the complaints (web/complaints.js). Everything comes
// from the gateway's API with the session's bearer token, except the on-chain check, which
// talks to the chain's JSON-RPC directly (docs/customer-page.md).
"use strict";

const state = {
  token: null, address: null, role: null, health: null, bills: null, currency: null, trades: null,
  bill: null, packageText: null, charts: [],
};
const $ = (selector) => document.querySelector(selector);

/** A meter id (bytes32) as its serial when it is printable text right-padded with zeros
 * (docs/reading-format.md), else its first hex digits. */
function meterLabel(hex) {
  const bytes = ethers.getBytes(hex);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  const serial = bytes.slice(0, end);
  if (end > 0 && serial.every((b) => b >= 0x20 && b < 0x7f)) return String.fromCharCode(...serial);
  return hex.slice(0, 10) + "…";
}

// --- the gateway ---------------------------------------------------------------------------

async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = {};
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try { const error = JSON.parse(text).error; message = `${error.code}: ${error.message}`; } catch (_) { /* not JSON */ }
    throw new Error(I18n.t("error.http", { status: response.status, message }));
  }
  return raw ? text : JSON.parse(text);
}

function showError(error) {
  $("#error").textContent = error ? error.message : "";
}

// --- sign-in -------------------------------------------------------------------------------

async function signInWithWallet() {
  showError(null);
  if (!window.ethereum) throw new Error(I18n.t("signIn.noWallet"));
  const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
  const address = ethers.getAddress(account);
  const nonce = await api("/v1/auth/nonce", { method: "POST", body: {} });
  const message = siweMessage({ address, nonce, chainId: state.health.chain.chain_id });
  const signature = await window.ethereum.request({ method: "personal_sign", params: [ethers.hexlify(ethers.toUtf8Bytes(message)), address] });
  const session = await api("/v1/auth/sign-in", { method: "POST", body: { message, signature } });
  state.token = session.token;
  state.address = ethers.getAddress(session.address);
  state.role = session.role;
  renderWho();
  await showAccount();
}

async function signInWithToken() {
  showError(null);
  state.token = $("#token").value.trim() || null;
  state.address = ethers.getAddress($("#customer-address").value.trim());
  state.role = "token";
  renderWho();
  await showAccount();
}

/** Who the page shows: a signed-in address and its role, or the account a token holder views. */
function renderWho() {
  const who = $("#who");
  if (!state.address) return;
  who.dataset.role = state.role;
  who.dataset.address = state.address;
  who.textContent = state.role === "token"
    ? I18n.t("signIn.viewing", { address: state.address })
    : I18n.t("signIn.signedIn", { address: state.address, role: I18n.t(`role.${state.role}`) });
}

// --- bills ---------------------------------------------------------------------------------

async function showAccount() {
  const { bills } = await api(`/v1/customers/${state.address}/bills`);
  state.bills = bills;
  // The settlement token's symbol and decimals, for amounts outside a bill (trades).
  state.currency = bills.length > 0 ? bills[0].document.currency : null;
  renderBillList();
  $("#bills-section").hidden = false;
  $("#tabs").hidden = false;
  $("#complaints-section").hidden = false;
  await showTrades().catch(showError);
  await CustomerComplaints.refresh().catch(showError);
}

/** The bills tab (bills, usage, trades, downloads) or the complaints tab (web/complaints.js). */
function showTab(name) {
  document.body.dataset.tab = name;
  for (const button of document.querySelectorAll("#tabs button")) button.setAttribute("aria-selected", String(button.dataset.tab === name));
}

function renderBillList() {
  if (!state.bills) return;
  const bills = state.bills;
  const list = $("#bill-list");
  list.replaceChildren();
  for (const bill of bills) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "open-bill";
    button.dataset.hash = bill.bill_hash;
    const currency = bill.document.currency;
    button.textContent = I18n.t("bills.item", {
      period: `${I18n.date(bill.period_start)} – ${I18n.date(bill.period_end - 1)}`,
      total: I18n.money(BigInt(bill.total_minor), currency),
    }) + (bill.current ? "" : " " + I18n.t("bills.corrected"));
    button.addEventListener("click", () => openBill(bill.bill_hash).catch(showError));
    item.append(button);
    list.append(item);
  }
  $("#no-bills").hidden = bills.length > 0;
}

async function openBill(hash) {
  showError(null);
  // The package is kept as text: verify.js parses it with exact integers.
  state.packageText = await api(`/v1/bills/${hash}/evidence`, { raw: true });
  state.bill = { hash, pkg: LedgerVerify.parseExact(state.packageText) };
  renderBill();
  renderUsage();
  renderDownloads();
  for (const id of ["#bill-section", "#verify-section", "#usage-section", "#downloads-section"]) $(id).hidden = false;
  await runVerification();
}

function renderBill() {
  if (!state.bill) return;
  const doc = state.bill.pkg.bill;
  const currency = doc.currency;
  $("#bill-period").textContent = `${I18n.date(doc.period.start)} – ${I18n.date(doc.period.end - 1n)}`;
  $("#bill-total").textContent = I18n.money(doc.total_minor, currency);
  $("#bill-p2p").textContent = I18n.money(doc.p2p_settled_minor, currency);
  $("#bill-due").textContent = I18n.money(doc.amount_due_minor, currency);
  $("#bill-without-p2p").textContent = I18n.money(doc.without_p2p_total_minor, currency);
  $("#bill-hash").textContent = state.bill.hash;
  $("#bill-estimated").hidden = !doc.lines.some((line) => line.estimated);
  const body = $("#bill-lines tbody");
  body.replaceChildren();
  for (const [index, line] of doc.lines.entries()) {
    const row = document.createElement("tr");
    const unitPrice = line.unit_price_minor === null ? "" : `${I18n.money(line.unit_price_minor, currency)} / ${I18n.t(`per.${line.price_per}`)}`;
    const cells = [
      [I18n.t(`kind.${line.kind}`), ""],
      [line.band === null ? "" : I18n.t(`band.${line.band}`), ""],
      [`${I18n.number(line.quantity)} ${I18n.t(`unit.${line.unit}`)}`, "num"],
      [unitPrice, "num"],
      [I18n.money(line.amount_minor, currency), "num"],
      [line.estimated ? `${I18n.t("yes")} (${line.estimate_rule})` : I18n.t("no"), ""],
    ];
    for (const [text, cls] of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (cls) cell.className = cls;
      row.append(cell);
    }
    row.append(CustomerComplaints.lineCell(state.bill.hash, index));
    body.append(row);
  }
}

// --- the on-chain panel --------------------------------------------------------------------

function defaultRpcUrl() {
  const url = state.health && state.health.chain.rpc_url;
  // /healthz shows a URL's credentials as ***: such a URL cannot be used from here.
  return url && !url.includes("***") ? url : "";
}

async function runVerification() {
  if (!state.bill) return;
  const rpcUrl = $("#rpc-url").value.trim();
  const checks = $("#checks");
  const verdict = $("#verdict");
  checks.replaceChildren();
  if (!rpcUrl) {
    verdict.dataset.status = "idle";
    verdict.textContent = I18n.t("verify.noRpc");
    return;
  }
  verdict.dataset.status = "running";
  verdict.textContent = I18n.t("verify.running");
  const ok = await LedgerVerify.verifyBill({
    claimedHash: state.bill.hash,
    packageText: state.packageText,
    rpcUrl,
    report(item) {
      const li = document.createElement("li");
      li.dataset.check = item.id;
      li.dataset.status = item.status;
      li.dataset.key = item.key;
      li.dataset.params = JSON.stringify(item.params);
      li.dataset.detail = item.detail;
      renderCheck(li);
      checks.append(li);
    },
  }).catch((error) => {
    const li = document.createElement("li");
    li.dataset.check = "package";
    li.dataset.status = "fail";
    li.dataset.key = "verify.fail";
    li.dataset.params = "{}";
    li.dataset.detail = error.message;
    renderCheck(li);
    checks.append(li);
    return false;
  });
  verdict.dataset.status = ok ? "pass" : "fail";
  verdict.textContent = I18n.t(ok ? "verify.pass" : "verify.fail");
}

function renderCheck(li) {
  const status = document.createElement("span");
  status.className = "status";
  status.textContent = (li.dataset.status === "pass" ? "✔ " : "✘ ") + I18n.t(`status.${li.dataset.status}`);
  const label = document.createElement("span");
  label.textContent = " " + I18n.t(li.dataset.key, JSON.parse(li.dataset.params));
  const detail = document.createElement("div");
  detail.className = "detail";
  detail.textContent = li.dataset.detail;
  li.replaceChildren(status, label, detail);
}

// --- usage charts --------------------------------------------------------------------------

function renderUsage() {
  if (!state.bill) return;
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
  const { bill: doc, readings } = state.bill.pkg;
  const bands = ["peak", "flat", "valley"];
  const byBand = bands.map((band) => doc.lines
    .filter((line) => line.kind === "grid_import" && line.band === band)
    .reduce((sum, line) => sum + Number(line.quantity), 0));
  // By day: the signed cumulative import registers of the bill's readings, each interval's Wh
  // given to the local day its end falls on, within the bill's period.
  const perDay = new Map();
  const byMeter = new Map();
  for (const entry of readings) {
    const reading = LedgerVerify.decodeReading(entry.canonical);
    if (!byMeter.has(reading.meterId)) byMeter.set(reading.meterId, []);
    byMeter.get(reading.meterId).push(reading);
  }
  for (const list of byMeter.values()) {
    list.sort((a, b) => (a.seq < b.seq ? -1 : 1));
    for (let i = 1; i < list.length; i++) {
      const end = list[i].timestamp;
      if (end <= doc.period.start || end > doc.period.end) continue;
      const day = I18n.day(end - 1n);
      perDay.set(day, (perDay.get(day) || 0) + Number(list[i].importWh - list[i - 1].importWh));
    }
  }
  state.charts.push(new Chart($("#usage-by-band"), {
    type: "bar",
    data: { labels: bands.map((band) => I18n.t(`band.${band}`)), datasets: [{ label: I18n.t("usage.byBand"), data: byBand, backgroundColor: ["#c0392b", "#e6a23c", "#2e86c1"] }] },
    options: { animation: false, plugins: { legend: { display: false } }, locale: I18n.locale },
  }));
  state.charts.push(new Chart($("#usage-by-day"), {
    type: "bar",
    data: { labels: [...perDay.keys()], datasets: [{ label: I18n.t("usage.imported"), data: [...perDay.values()], backgroundColor: "#1f6f43" }] },
    options: { animation: false, plugins: { legend: { display: false } }, locale: I18n.locale },
  }));
}

// --- trades and downloads ------------------------------------------------------------------

async function showTrades() {
  state.trades = (await api(`/v1/customers/${state.address}/trades`)).trades;
  renderTrades();
  $("#trades-section").hidden = false;
}

function renderTrades() {
  if (!state.trades) return;
  const trades = state.trades;
  const body = $("#trades tbody");
  body.replaceChildren();
  for (const trade of trades) {
    const row = document.createElement("tr");
    const buying = ethers.getAddress(trade.buyer) === state.address;
    const cells = [
      [`#${trade.trade_id}`, ""],
      [I18n.t(buying ? "trades.buy" : "trades.sell"), ""],
      [I18n.dateTime(trade.delivery_start), ""],
      [I18n.t(`tradeState.${trade.state}`), ""],
      [`${I18n.number(trade.delivered_wh)} ${I18n.t("unit.Wh")}`, "num"],
      // `paid` is in minor units of the settlement token.
      [state.currency ? I18n.money(BigInt(trade.paid), state.currency) : I18n.number(trade.paid), "num"],
    ];
    for (const [text, cls] of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (cls) cell.className = cls;
      row.append(cell);
    }
    body.append(row);
  }
  $("#no-trades").hidden = trades.length > 0;
}

/** A download that needs the session's token: fetched, then saved from a blob. */
function downloadItem(label, path, filename) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = path;
  link.textContent = label;
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      const text = await api(path, { raw: true });
      const url = URL.createObjectURL(new Blob([text]));
      const save = document.createElement("a");
      save.href = url;
      save.download = filename;
      save.click();
      URL.revokeObjectURL(url);
    } catch (error) { showError(error); }
  });
  item.append(link);
  return item;
}

function renderDownloads() {
  if (!state.bill) return;
  const list = $("#downloads");
  list.replaceChildren(downloadItem(I18n.t("downloads.evidence"), `/v1/bills/${state.bill.hash}/evidence`, `bill-${state.bill.hash.slice(2, 12)}.json`));
  for (const meter of state.bill.pkg.bill.meters) {
    const short = meterLabel(meter);
    list.append(downloadItem(I18n.t("downloads.exportJson", { meter: short }), `/v1/meters/${meter}/export.json`, `meter-${meter.slice(2, 12)}.json`));
    list.append(downloadItem(I18n.t("downloads.exportCsv", { meter: short }), `/v1/meters/${meter}/export.csv`, `meter-${meter.slice(2, 12)}.csv`));
    list.append(downloadItem(I18n.t("downloads.exportXml", { meter: short }), `/v1/meters/${meter}/export.xml`, `meter-${meter.slice(2, 12)}.xml`));
  }
}

// --- language ------------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = I18n.locale;
  $("#language").value = I18n.locale;
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = I18n.t(element.dataset.i18n);
  document.title = I18n.t("title");
  renderWho();
  renderBillList();
  renderTrades();
  for (const li of document.querySelectorAll("#checks li")) renderCheck(li);
  const verdict = $("#verdict");
  if (verdict.dataset.status === "pass" || verdict.dataset.status === "fail") verdict.textContent = I18n.t(`verify.${verdict.dataset.status}`);
  renderBill();
  renderUsage();
  renderDownloads();
  CustomerComplaints.render();
}

// --- start ---------------------------------------------------------------------------------

async function start() {
  applyLanguage();
  $("#language").addEventListener("change", (event) => { I18n.set(event.target.value); applyLanguage(); });
  $("#sign-in").addEventListener("click", () => signInWithWallet().catch(showError));
  $("#use-token").addEventListener("click", () => signInWithToken().catch(showError));
  $("#verify-again").addEventListener("click", () => runVerification().catch(showError));
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => {
      showTab(button.dataset.tab);
      // The operator answers meanwhile: coming back to the tab lists the complaints afresh.
      if (button.dataset.tab === "complaints") CustomerComplaints.refresh().catch(showError);
    });
  }
  showTab("bills");
  CustomerComplaints.install();
  state.health = await api("/healthz");
  $("#rpc-url").value = defaultRpcUrl();
  document.body.dataset.ready = "true";
}

start().catch(showError);
