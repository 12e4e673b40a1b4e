// The complaints service page (/app/service.html, docs/customer-page.md): the queue, soonest
// breach first; one complaint's rounds and steps, and for the operator a form recording the
// next step; the month's statistics with a chart and the negative list (docs/complaints.md).
//
// Who: the operator with its bearer token (pasted here, kept in sessionStorage: gone when the
// tab closes, never in localStorage), or an auditor signed in with its wallet (Sign-In with
// Ethereum), who reads everything and records nothing. The queue route is the operator's; an
// auditor's queue is every complaint still owed a step, ordered here as the gateway orders it.
"use strict";

const TOKEN_KEY = "complaintsOperatorToken";
const NEXT_STEP = { open: "respond", responded: "assign", assigned: "plan", planned: "resolve" };

const service = {
  token: null, role: null, address: null, health: null, queue: null, detail: null, stats: null, chart: null,
};
const $ = (selector) => document.querySelector(selector);

async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (service.token) headers.authorization = `Bearer ${service.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try { const error = JSON.parse(text).error; message = `${error.code}: ${error.message}`; } catch (_) { /* not JSON */ }
    throw new Error(I18n.t("error.http", { status: response.status, message }));
  }
  return JSON.parse(text);
}

function showError(error) {
  $("#error").textContent = error ? error.message : "";
}

// --- sign-in -------------------------------------------------------------------------------

async function useToken(token) {
  showError(null);
  service.token = token;
  service.role = "operator";
  service.address = null;
  // Checked before it is kept: the queue answers only the operator's token.
  await refreshQueue();
  sessionStorage.setItem(TOKEN_KEY, token);
  await showSignedIn();
}

async function signInAsAuditor() {
  showError(null);
  if (!window.ethereum) throw new Error(I18n.t("signIn.noWallet"));
  const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
  const address = ethers.getAddress(account);
  const nonce = await api("/v1/auth/nonce", { method: "POST", body: {} });
  const message = siweMessage({ address, nonce, chainId: service.health.chain.chain_id });
  const signature = await window.ethereum.request({ method: "personal_sign", params: [ethers.hexlify(ethers.toUtf8Bytes(message)), address] });
  const session = await api("/v1/auth/sign-in", { method: "POST", body: { message, signature } });
  if (session.role !== "auditor") throw new Error(I18n.t("service.notAuditor", { address }));
  service.token = session.token;
  service.role = "auditor";
  service.address = ethers.getAddress(session.address);
  await refreshQueue();
  await showSignedIn();
}

async function showSignedIn() {
  renderWho();
  for (const id of ["#queue-section", "#stats-section"]) $(id).hidden = false;
  if (!$("#stats-month").value) $("#stats-month").value = defaultMonth();
  await showStatistics();
}

function renderWho() {
  const who = $("#who");
  if (!service.role) return;
  who.dataset.role = service.role;
  who.textContent = service.role === "operator"
    ? I18n.t("service.asOperator")
    : I18n.t("signIn.signedIn", { address: service.address, role: I18n.t("role.auditor") });
}

/** The month of the chain's latest time the queue showed (the chain's clock may differ from
 * this computer's), else this computer's, in UTC. */
function defaultMonth() {
  const asOf = service.queue && service.queue.length ? service.queue[0].as_of : Math.floor(Date.now() / 1000);
  return new Date(asOf * 1000).toISOString().slice(0, 7);
}

// --- the queue and one complaint -----------------------------------------------------------

/** The gateway's queue order (ComplaintService.queue): the soonest breach first, overdue at
 * the top; those with no targeted step pending last, oldest round first. */
function queueOrder(a, b) {
  const key = (c) => (c.time_to_breach_s === null ? [1, c.round_started_at, c.complaint_id] : [0, c.time_to_breach_s, c.complaint_id]);
  const [x, y] = [key(a), key(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}

async function refreshQueue() {
  if (service.role === "operator") {
    service.queue = (await api("/v1/complaints/queue")).complaints;
  } else {
    const { complaints } = await api("/v1/complaints");
    service.queue = complaints.filter((c) => c.status !== "resolved" && c.status !== "rated").sort(queueOrder);
  }
  renderQueue();
}

function renderQueue() {
  if (!service.queue) return;
  const body = $("#queue tbody");
  body.replaceChildren();
  for (const summary of service.queue) {
    const row = document.createElement("tr");
    row.className = "queue-row";
    row.dataset.complaintId = summary.complaint_id;
    row.dataset.timeToBreach = summary.time_to_breach_s === null ? "" : summary.time_to_breach_s;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open-complaint";
    open.textContent = `#${summary.complaint_id}`;
    open.addEventListener("click", () => openDetail(summary.complaint_id).catch(showError));
    const idCell = document.createElement("td");
    idCell.append(open);
    const breach = ComplaintsView.cell(ComplaintsView.breach(summary), "breach");
    if (summary.time_to_breach_s !== null && summary.time_to_breach_s < 0) breach.classList.add("state-overdue");
    row.append(
      idCell,
      ComplaintsView.cell(summary.customer),
      ComplaintsView.cell(ComplaintsView.subject(summary)),
      ComplaintsView.cell(I18n.t(`complaintStatus.${summary.status}`)),
      ComplaintsView.cell(String(summary.round), "num"),
      breach,
    );
    body.append(row);
  }
  $("#queue-empty").hidden = service.queue.length > 0;
}

async function openDetail(id) {
  showError(null);
  showDetail(await api(`/v1/complaints/${id}`));
}

function showDetail(complaint) {
  service.detail = complaint;
  const next = NEXT_STEP[complaint.status];
  if (next) $("#step-name").value = next;
  renderDetail();
  $("#service-detail").hidden = false;
}

function renderDetail() {
  const complaint = service.detail;
  if (!complaint) return;
  const section = $("#service-detail");
  section.dataset.complaintId = complaint.complaint_id;
  section.dataset.status = complaint.status;
  $("#service-detail-heading").textContent = I18n.t("complaints.detailHeading", {
    id: complaint.complaint_id,
    subject: ComplaintsView.subject(complaint),
    status: I18n.t(`complaintStatus.${complaint.status}`),
  });
  ComplaintsView.renderRounds($("#service-rounds"), complaint);
  $("#step-form").hidden = !(service.role === "operator" && NEXT_STEP[complaint.status]);
  $("#step-handler-label").hidden = $("#step-name").value !== "assign";
}

async function recordStep() {
  showError(null);
  const step = $("#step-name").value;
  const body = { step, text: $("#step-text").value.trim() };
  if (!body.text) throw new Error(I18n.t("complaints.textRequired"));
  if (step === "assign") body.handler = $("#step-handler").value.trim();
  const answer = await api(`/v1/complaints/${service.detail.complaint_id}/steps`, { method: "POST", body });
  $("#step-text").value = "";
  showDetail(answer);
  await refreshQueue();
  await showStatistics();
}

// --- statistics ----------------------------------------------------------------------------

async function showStatistics() {
  const month = $("#stats-month").value;
  if (!month) return;
  service.stats = await api(`/v1/complaints/statistics?month=${encodeURIComponent(month)}`);
  renderStatistics();
}

function renderStatistics() {
  const stats = service.stats;
  if (!stats) return;
  const duration = (seconds) => (seconds === null ? "" : ComplaintsView.duration(seconds));
  $("#stats-count").textContent = I18n.number(stats.count);
  $("#stats-reopened").textContent = I18n.number(stats.reopened);
  $("#stats-as-of").textContent = I18n.dateTime(stats.as_of);
  const body = $("#stats-steps tbody");
  body.replaceChildren();
  for (const step of stats.steps) {
    const row = document.createElement("tr");
    row.dataset.step = step.step;
    // Basis points, rounded down by the gateway, shown as a percentage with two decimals
    // from the integer (no float).
    const share = step.share_met_bp === null ? "" : `${Math.floor(step.share_met_bp / 100)}.${String(step.share_met_bp % 100).padStart(2, "0")} %`;
    row.append(
      ComplaintsView.cell(I18n.t(`complaintStep.${step.step}`)),
      ComplaintsView.cell(I18n.number(step.taken), "num"),
      ComplaintsView.cell(duration(step.median_s), "num"),
      ComplaintsView.cell(duration(step.p90_s), "num"),
      ComplaintsView.cell(step.target_s === null ? I18n.t("complaints.noTarget") : duration(step.target_s), "num"),
      ComplaintsView.cell(step.due === null ? "" : I18n.number(step.due), "num"),
      ComplaintsView.cell(step.met === null ? "" : I18n.number(step.met), "num"),
      ComplaintsView.cell(share, "num share"),
    );
    body.append(row);
  }
  renderChart(stats);
  const breaches = $("#breaches tbody");
  breaches.replaceChildren();
  for (const breach of stats.breaches) {
    const row = document.createElement("tr");
    row.dataset.complaintId = breach.complaint_id;
    row.dataset.step = breach.step;
    row.append(
      ComplaintsView.cell(`#${breach.complaint_id}`),
      ComplaintsView.cell(String(breach.round), "num"),
      ComplaintsView.cell(I18n.t(`complaintStep.${breach.step}`)),
      ComplaintsView.cell(I18n.t(`subjectKind.${breach.subject_kind}`)),
      ComplaintsView.cell(duration(breach.target_s), "num"),
      ComplaintsView.cell(I18n.dateTime(breach.due_at)),
      ComplaintsView.cell(I18n.t(breach.answered ? "service.answeredLate" : "service.notAnswered")),
      ComplaintsView.cell(duration(breach.delay_s), "num"),
    );
    breaches.append(row);
  }
  $("#no-breaches").hidden = stats.breaches.length > 0;
}

/** Median, p90 and target of each step in minutes (chart.js draws numbers; minutes read
 * better than seconds at these scales). */
function renderChart(stats) {
  if (service.chart) service.chart.destroy();
  const minutes = (seconds) => (seconds === null ? null : seconds / 60);
  service.chart = new Chart($("#stats-chart"), {
    type: "bar",
    data: {
      labels: stats.steps.map((step) => I18n.t(`complaintStep.${step.step}`)),
      datasets: [
        { label: I18n.t("service.median"), data: stats.steps.map((s) => minutes(s.median_s)), backgroundColor: "#1f6f43" },
        { label: I18n.t("service.p90"), data: stats.steps.map((s) => minutes(s.p90_s)), backgroundColor: "#e6a23c" },
        { label: I18n.t("complaints.target"), data: stats.steps.map((s) => minutes(s.target_s)), backgroundColor: "#9aa0a6" },
      ],
    },
    options: { animation: false, aspectRatio: 3, locale: I18n.locale },
  });
}

// --- language and start --------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = I18n.locale;
  $("#language").value = I18n.locale;
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = I18n.t(element.dataset.i18n);
  document.title = I18n.t("service.title");
  renderWho();
  renderQueue();
  renderDetail();
  renderStatistics();
}

async function start() {
  applyLanguage();
  $("#language").addEventListener("change", (event) => { I18n.set(event.target.value); applyLanguage(); });
  $("#use-token").addEventListener("click", () => useToken($("#operator-token").value.trim()).catch(showError));
  $("#auditor-sign-in").addEventListener("click", () => signInAsAuditor().catch(showError));
  $("#stats-show").addEventListener("click", () => showStatistics().catch(showError));
  $("#step-name").addEventListener("change", () => renderDetail());
  $("#step-form").addEventListener("submit", (event) => { event.preventDefault(); recordStep().catch(showError); });
  service.health = await api("/healthz");
  const kept = sessionStorage.getItem(TOKEN_KEY);
  // A token kept from earlier in this tab; one the gateway now refuses is forgotten.
  if (kept) await useToken(kept).catch((error) => { sessionStorage.removeItem(TOKEN_KEY); showError(error); });
  document.body.dataset.ready = "true";
}

start().catch(showError);
