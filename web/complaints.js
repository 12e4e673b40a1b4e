// Complaints in the pages (docs/customer-page.md, docs/complaints.md).
//
// ComplaintsView draws what both pages show: a complaint's rounds with each step's block time,
// its target and met/late, or waiting (time left) / overdue, read at the chain's time (`as_of`).
// CustomerComplaints is the customer page's tab: the customer's own complaints, one opened from
// a bill line in one click, and rating or reopening a resolved one. Each customer step is an
// EIP-712 message the wallet signs (eth_signTypedData_v4) and the gateway relays: the customer
// needs no ether. It uses the customer page's `api`, `state`, `$` and `showError` (app.js) when
// called, never when this file loads, so it is loaded before app.js.
"use strict";

const SUBJECT_KINDS = ["bill_line", "reading", "trade", "outage", "other"];
const SIGNED_STEP_VALID_S = 3600;
const ZERO_REF = "0x" + "0".repeat(64);

const EIP712_DOMAIN = [
  { name: "name", type: "string" },
  { name: "version", type: "string" },
  { name: "chainId", type: "uint256" },
  { name: "verifyingContract", type: "address" },
];
/** The registry's types (docs/complaints.md, ledger/complaints/signing.py). */
const COMPLAINT_TYPES = {
  Open: [
    { name: "kind", type: "uint8" }, { name: "subjectRef", type: "bytes32" }, { name: "textHash", type: "bytes32" },
    { name: "customer", type: "address" }, { name: "nonce", type: "uint256" }, { name: "deadline", type: "uint256" },
  ],
  Rate: [
    { name: "complaintId", type: "uint256" }, { name: "rating", type: "uint8" },
    { name: "customer", type: "address" }, { name: "nonce", type: "uint256" }, { name: "deadline", type: "uint256" },
  ],
  Reopen: [
    { name: "complaintId", type: "uint256" }, { name: "textHash", type: "bytes32" },
    { name: "customer", type: "address" }, { name: "nonce", type: "uint256" }, { name: "deadline", type: "uint256" },
  ],
};

const ComplaintsView = {
  /** A number of seconds as "1 h 5 min" (or "45 s"), in the page's language. */
  duration(seconds) {
    let left = Math.abs(Number(seconds));
    const parts = [];
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
      if (left >= size) {
        parts.push(I18n.t(`duration.${unit}`, { n: Math.floor(left / size) }));
        left %= size;
      }
    }
    if (parts.length === 0 || (left > 0 && parts.length < 2)) parts.push(I18n.t("duration.s", { n: left }));
    return parts.slice(0, 2).join(" ");
  },

  /** A step's state as words: met, late, "waiting, 25 min left", "overdue by 1 h". */
  stepState(step) {
    if (step.state === "waiting") return I18n.t("complaintState.waiting", { left: this.duration(step.time_left_s) });
    if (step.state === "overdue") return I18n.t("complaintState.overdue", { late: this.duration(step.overdue_s) });
    return I18n.t(`complaintState.${step.state}`);
  },

  /** When the next targeted step is due: "in 25 min", "overdue by 1 h", or nothing due. */
  breach(summary) {
    const left = summary.time_to_breach_s;
    if (left === null || left === undefined) return I18n.t("complaints.noneDue");
    return left >= 0 ? I18n.t("complaints.dueIn", { left: this.duration(left) }) : I18n.t("complaints.overdueBy", { late: this.duration(-left) });
  },

  /** A summary's subject: the bill line it names when `lineOf` knows it, else its kind. */
  subject(summary, lineOf) {
    const line = lineOf ? lineOf(summary.subject_ref) : null;
    if (summary.subject_kind === "bill_line" && line) return I18n.t("complaints.subjectLine", line);
    return I18n.t(`subjectKind.${summary.subject_kind}`);
  },

  cell(text, cls) {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (cls) cell.className = cls;
    return cell;
  },

  /** The complaint's rounds, each a table of its steps (data-step, data-state for tests). */
  renderRounds(container, complaint) {
    container.replaceChildren();
    for (const round of complaint.rounds) {
      const block = document.createElement("div");
      block.className = "complaint-round";
      block.dataset.round = round.round;
      const heading = document.createElement("h4");
      heading.textContent = I18n.t("complaints.round", { round: round.round, at: I18n.dateTime(round.started_at) });
      block.append(heading);
      if (round.text) {
        const text = document.createElement("blockquote");
        text.textContent = round.text;
        block.append(text);
      }
      const facts = [];
      if (round.handler) facts.push(I18n.t("complaints.handler", { handler: round.handler }));
      if (round.rating) facts.push(I18n.t("complaints.rated", { rating: round.rating, at: I18n.dateTime(round.rated_at) }));
      if (facts.length) {
        const p = document.createElement("p");
        p.textContent = facts.join(" · ");
        block.append(p);
      }
      const table = document.createElement("table");
      table.className = "complaint-steps";
      const head = document.createElement("tr");
      for (const key of ["complaints.step", "complaints.at", "complaints.took", "complaints.target", "complaints.state", "complaints.answer"]) {
        const th = document.createElement("th");
        th.textContent = I18n.t(key);
        head.append(th);
      }
      const thead = document.createElement("thead");
      thead.append(head);
      const body = document.createElement("tbody");
      for (const step of round.steps) {
        const row = document.createElement("tr");
        row.dataset.step = step.step;
        row.dataset.state = step.state;
        row.append(
          this.cell(I18n.t(`complaintStep.${step.step}`)),
          this.cell(step.at === null ? "" : I18n.dateTime(step.at)),
          this.cell(step.took_s === null ? "" : this.duration(step.took_s), "num"),
          this.cell(step.target_s === null ? I18n.t("complaints.noTarget") : this.duration(step.target_s), "num"),
          this.cell(this.stepState(step), `state state-${step.state}`),
          this.cell(step.text || ""),
        );
        if (step.at !== null) row.children[1].dataset.at = step.at;
        body.append(row);
      }
      table.append(thead, body);
      block.append(table);
      container.append(block);
    }
    const asOf = document.createElement("p");
    asOf.className = "note";
    asOf.textContent = I18n.t("complaints.asOf", { at: I18n.dateTime(complaint.as_of) });
    container.append(asOf);
  },
};

// --- the customer page's tab ---------------------------------------------------------------

const CustomerComplaints = {
  list: null,
  detail: null,
  draft: null, // { kind, ref, label } of the complaint being written
  chainTime: 0, // the latest block time the gateway showed (as_of): deadlines count from it

  /** The EIP-712 message of `primaryType`, signed by the wallet; returns the fields every
   * relayed step's body carries. The deadline is an hour after the later of this computer's
   * clock and the chain's latest time seen, as the contract compares it with the block's. */
  async sign(primaryType, message) {
    if (!window.ethereum) throw new Error(I18n.t("signIn.noWallet"));
    const context = await api("/v1/complaints/signing");
    const now = Math.max(Math.floor(Date.now() / 1000), this.chainTime);
    const deadline = now + SIGNED_STEP_VALID_S;
    const full = { ...message, customer: state.address, nonce: context.nonce, deadline };
    const typedData = {
      types: { EIP712Domain: EIP712_DOMAIN, [primaryType]: COMPLAINT_TYPES[primaryType] },
      primaryType,
      domain: context.domain,
      message: full,
    };
    const signature = await window.ethereum.request({ method: "eth_signTypedData_v4", params: [state.address, JSON.stringify(typedData)] });
    return { customer: state.address, deadline, signature };
  },

  /** The reference of line `index` of the bill `billHash` (docs/complaints.md: keccak256 of
   * the bill hash and the line index as a big-endian uint32). */
  lineRef(billHash, index) {
    return ethers.solidityPackedKeccak256(["bytes32", "uint32"], [billHash, index]);
  },

  /** The bill line a reference names, among the customer's listed bills, for display. */
  lineOf(ref) {
    for (const bill of state.bills || []) {
      const lines = bill.document.lines;
      for (let index = 0; index < lines.length; index++) {
        if (CustomerComplaints.lineRef(bill.bill_hash, index) === ref) {
          return { period: `${I18n.date(bill.period_start)} – ${I18n.date(bill.period_end - 1)}`, line: index + 1, kind: I18n.t(`kind.${lines[index].kind}`) };
        }
      }
    }
    return null;
  },

  /** The bill table's cell with the line's "Complain about this line" button. */
  lineCell(billHash, index) {
    const cell = document.createElement("td");
    if (state.role !== "customer") return cell;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "complain-line";
    button.dataset.line = index;
    button.textContent = I18n.t("complaints.aboutLine");
    button.addEventListener("click", () => this.startDraft("bill_line", this.lineRef(billHash, index)));
    cell.append(button);
    return cell;
  },

  /** Opens the form, prefilled with the subject; the customer writes the text. */
  startDraft(kind, ref) {
    showError(null);
    this.draft = { kind, ref };
    showTab("complaints");
    $("#complaint-form").hidden = false;
    this.renderDraft();
    $("#complaint-text").focus();
  },

  renderDraft() {
    if (!this.draft) return;
    const line = this.draft.kind === "bill_line" ? this.lineOf(this.draft.ref) : null;
    $("#complaint-subject").textContent = line ? I18n.t("complaints.subjectLine", line) : I18n.t(`subjectKind.${this.draft.kind}`);
    $("#complaint-kind-label").hidden = this.draft.kind === "bill_line";
    $("#complaint-form").dataset.kind = this.draft.kind;
    $("#complaint-form").dataset.ref = this.draft.ref;
  },

  async submitDraft() {
    showError(null);
    const text = $("#complaint-text").value.trim();
    if (!text) throw new Error(I18n.t("complaints.textRequired"));
    const kind = this.draft.kind === "bill_line" ? "bill_line" : $("#complaint-kind").value;
    const textHash = ethers.keccak256(ethers.toUtf8Bytes(text));
    const signed = await this.sign("Open", { kind: SUBJECT_KINDS.indexOf(kind), subjectRef: this.draft.ref, textHash });
    const created = await api("/v1/complaints", { method: "POST", body: { ...signed, subject_kind: kind, subject_ref: this.draft.ref, text } });
    this.cancelDraft();
    await this.refresh();
    this.showDetail(created);
  },

  cancelDraft() {
    this.draft = null;
    $("#complaint-text").value = "";
    $("#complaint-form").hidden = true;
  },

  /** The customer's own complaints (a token holder: the viewed account's, among all). */
  async refresh() {
    const { complaints } = await api("/v1/complaints");
    this.list = complaints.filter((c) => ethers.getAddress(c.customer) === state.address);
    for (const c of complaints) this.chainTime = Math.max(this.chainTime, c.as_of);
    this.renderList();
    $("#new-complaint").hidden = state.role !== "customer";
  },

  renderList() {
    if (!this.list) return;
    const body = $("#complaint-list tbody");
    body.replaceChildren();
    for (const summary of this.list) {
      const row = document.createElement("tr");
      row.className = "complaint-row";
      row.dataset.complaintId = summary.complaint_id;
      row.dataset.status = summary.status;
      const open = document.createElement("button");
      open.type = "button";
      open.className = "open-complaint";
      open.textContent = `#${summary.complaint_id}`;
      open.addEventListener("click", () => this.openDetail(summary.complaint_id).catch(showError));
      const idCell = document.createElement("td");
      idCell.append(open);
      row.append(
        idCell,
        ComplaintsView.cell(ComplaintsView.subject(summary, (ref) => this.lineOf(ref))),
        ComplaintsView.cell(I18n.t(`complaintStatus.${summary.status}`)),
        ComplaintsView.cell(I18n.dateTime(summary.opened_at)),
        ComplaintsView.cell(ComplaintsView.breach(summary), "breach"),
      );
      body.append(row);
    }
    $("#no-complaints").hidden = this.list.length > 0;
  },

  async openDetail(id) {
    showError(null);
    this.showDetail(await api(`/v1/complaints/${id}`));
  },

  showDetail(complaint) {
    this.detail = complaint;
    this.chainTime = Math.max(this.chainTime, complaint.as_of);
    this.renderDetail();
    $("#complaint-detail").hidden = false;
  },

  renderDetail() {
    const complaint = this.detail;
    if (!complaint) return;
    const detail = $("#complaint-detail");
    detail.dataset.complaintId = complaint.complaint_id;
    detail.dataset.status = complaint.status;
    $("#complaint-detail-heading").textContent = I18n.t("complaints.detailHeading", {
      id: complaint.complaint_id,
      subject: ComplaintsView.subject(complaint, (ref) => this.lineOf(ref)),
      status: I18n.t(`complaintStatus.${complaint.status}`),
    });
    ComplaintsView.renderRounds($("#complaint-rounds"), complaint);
    const customer = state.role === "customer";
    $("#complaint-rate").hidden = !(customer && complaint.status === "resolved");
    $("#complaint-reopen").hidden = !(customer && (complaint.status === "resolved" || complaint.status === "rated"));
  },

  async rate() {
    showError(null);
    const rating = Number($("#complaint-rating").value);
    const id = this.detail.complaint_id;
    const signed = await this.sign("Rate", { complaintId: id, rating });
    this.showDetail(await api(`/v1/complaints/${id}/rate`, { method: "POST", body: { ...signed, rating } }));
    await this.refresh();
  },

  async reopen() {
    showError(null);
    const text = $("#complaint-reopen-text").value.trim();
    if (!text) throw new Error(I18n.t("complaints.textRequired"));
    const id = this.detail.complaint_id;
    const textHash = ethers.keccak256(ethers.toUtf8Bytes(text));
    const signed = await this.sign("Reopen", { complaintId: id, textHash });
    $("#complaint-reopen-text").value = "";
    this.showDetail(await api(`/v1/complaints/${id}/reopen`, { method: "POST", body: { ...signed, text } }));
    await this.refresh();
  },

  /** Redraws everything shown in the page's language. */
  render() {
    this.renderList();
    this.renderDraft();
    this.renderDetail();
  },

  install() {
    $("#complaint-form").addEventListener("submit", (event) => { event.preventDefault(); this.submitDraft().catch(showError); });
    $("#complaint-cancel").addEventListener("click", () => this.cancelDraft());
    $("#new-complaint").addEventListener("click", () => this.startDraft("other", ZERO_REF));
    $("#complaint-rate-button").addEventListener("click", () => this.rate().catch(showError));
    $("#complaint-reopen-button").addEventListener("click", () => this.reopen().catch(showError));
    $("#complaint-kind").addEventListener("change", (event) => { if (this.draft) this.draft.kind = event.target.value; this.renderDraft(); });
  },
};
