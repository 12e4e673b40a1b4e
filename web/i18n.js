// The page's words in English and Simplified Chinese. The language is the browser's first one we
// speak (navigator.languages), unless the person picked one with the switch (kept in
// localStorage). Dates, numbers and money are formatted by Intl for the same locale.
"use strict";

const MESSAGES = {
  en: {
    title: "Energy ledger",
    language: "Language",
    "signIn.heading": "Sign in",
    "signIn.explain": "Sign in with the key of the account that owns your meters: your wallet signs a one-time message; no transaction is sent.",
    "signIn.button": "Sign in with your wallet",
    "signIn.tokenSummary": "Sign in with an access token (operator, auditor)",
    "signIn.token": "Access token",
    "signIn.customer": "Customer address",
    "signIn.useToken": "Open",
    "signIn.noWallet": "No browser wallet found (window.ethereum). Install one, or use an access token.",
    "signIn.signedIn": "Signed in as {address} ({role}).",
    "signIn.viewing": "Showing the account {address}.",
    "role.customer": "customer",
    "role.auditor": "auditor",
    "bills.heading": "Your bills",
    "bills.none": "No bills yet.",
    "bills.item": "{period}: {total}",
    "bills.corrected": "(corrected)",
    "bill.heading": "Bill",
    "bill.total": "Total",
    "bill.p2p": "Settled with neighbours",
    "bill.due": "Amount due",
    "bill.withoutP2p": "Without trades it would be",
    "bill.hash": "Bill hash",
    "bill.estimated": "Some lines are estimated: a correction follows once the missing readings are anchored.",
    "line.kind": "Item",
    "line.band": "Band",
    "line.quantity": "Quantity",
    "line.unitPrice": "Unit price",
    "line.amount": "Amount",
    "line.estimated": "Estimated",
    "kind.grid_import": "Energy from the grid",
    "kind.feed_in": "Energy fed in",
    "kind.p2p_purchase": "Bought from a neighbour",
    "kind.p2p_sale": "Sold to a neighbour",
    "kind.fixed_daily": "Daily standing charge",
    "band.peak": "peak",
    "band.flat": "flat",
    "band.valley": "valley",
    "yes": "yes",
    "no": "no",
    "unit.Wh": "Wh",
    "unit.day": "days",
    "per.kWh": "kWh",
    "per.day": "day",
    "verify.heading": "Verified on chain",
    "verify.explain": "Your browser checks this bill against the chain itself: it recomputes the bill's hash, checks its Merkle proof against the root anchored in the BillRegistry, and checks a sample of your readings against their batch roots in the ReadingLedger. Nothing here relies on the gateway's word.",
    "verify.rpc": "Chain's JSON-RPC URL",
    "verify.again": "Check again",
    "verify.running": "Checking…",
    "verify.pass": "Verified on chain: every check passed.",
    "verify.fail": "NOT verified: some checks failed.",
    "verify.noRpc": "Type the chain's JSON-RPC URL to check this bill.",
    "check.chain": "The endpoint serves the bill's chain",
    "check.billHash": "The bill's hash, recomputed from its canonical bytes",
    "check.billAnchor": "The bill's Merkle proof leads to the root of run {run} in the BillRegistry",
    "check.reading": "Reading {seq} of meter {meter}: its proof leads to its batch root in the ReadingLedger",
    "check.noReadings": "The bill uses no reading",
    "status.pass": "pass",
    "status.fail": "FAIL",
    "usage.heading": "Usage",
    "usage.byBand": "Grid energy by band (Wh)",
    "usage.byDay": "Energy imported by day (Wh)",
    "usage.imported": "Imported (Wh)",
    "trades.heading": "Trades with neighbours",
    "trades.id": "Trade",
    "trades.side": "Side",
    "trades.slot": "Delivery",
    "trades.state": "State",
    "trades.delivered": "Delivered",
    "trades.paid": "Paid",
    "trades.none": "No trades.",
    "trades.buy": "bought",
    "trades.sell": "sold",
    "tradeState.open": "open",
    "tradeState.settled": "settled",
    "tradeState.refunded": "refunded",
    "downloads.heading": "Downloads",
    "downloads.evidence": "This bill with every proof (JSON, for ledger verify-bill)",
    "downloads.exportJson": "Meter {meter}: readings with proofs (JSON)",
    "downloads.exportCsv": "Meter {meter}: readings (CSV)",
    "downloads.exportXml": "Meter {meter}: Green Button usage (XML)",
    "footer.api": "API documentation",
    "error.http": "The gateway answered {status}: {message}",
  },
  "zh-CN": {
    title: "能源账本",
    language: "语言",
    "signIn.heading": "登录",
    "signIn.explain": "使用拥有您电表的账户密钥登录：钱包只签署一条一次性消息，不会发送任何交易。",
    "signIn.button": "使用钱包登录",
    "signIn.tokenSummary": "使用访问令牌登录（运营方、审计员）",
    "signIn.token": "访问令牌",
    "signIn.customer": "客户地址",
    "signIn.useToken": "打开",
    "signIn.noWallet": "未找到浏览器钱包（window.ethereum）。请安装钱包，或使用访问令牌。",
    "signIn.signedIn": "已登录：{address}（{role}）。",
    "signIn.viewing": "正在显示账户 {address}。",
    "role.customer": "客户",
    "role.auditor": "审计员",
    "bills.heading": "您的账单",
    "bills.none": "暂无账单。",
    "bills.item": "{period}：{total}",
    "bills.corrected": "（已更正）",
    "bill.heading": "账单",
    "bill.total": "合计",
    "bill.p2p": "已与邻居结算",
    "bill.due": "应付金额",
    "bill.withoutP2p": "如无交易则为",
    "bill.hash": "账单哈希",
    "bill.estimated": "部分明细为估算值：缺失的读数上链后将出具更正账单。",
    "line.kind": "项目",
    "line.band": "时段",
    "line.quantity": "数量",
    "line.unitPrice": "单价",
    "line.amount": "金额",
    "line.estimated": "估算",
    "kind.grid_import": "电网用电",
    "kind.feed_in": "上网电量",
    "kind.p2p_purchase": "向邻居购电",
    "kind.p2p_sale": "向邻居售电",
    "kind.fixed_daily": "每日固定费用",
    "band.peak": "峰",
    "band.flat": "平",
    "band.valley": "谷",
    "yes": "是",
    "no": "否",
    "unit.Wh": "瓦时",
    "unit.day": "天",
    "per.kWh": "千瓦时",
    "per.day": "天",
    "verify.heading": "链上验证",
    "verify.explain": "由您的浏览器直接对照区块链核验本账单：重新计算账单哈希，用 BillRegistry 中锚定的根验证其默克尔证明，并抽样核对您的读数与 ReadingLedger 中的批次根。无需信任网关。",
    "verify.rpc": "区块链 JSON-RPC 地址",
    "verify.again": "重新核验",
    "verify.running": "核验中…",
    "verify.pass": "链上验证通过：所有检查均已通过。",
    "verify.fail": "验证失败：部分检查未通过。",
    "verify.noRpc": "请输入区块链的 JSON-RPC 地址以核验本账单。",
    "check.chain": "该节点属于账单所在的链",
    "check.billHash": "根据规范字节重新计算的账单哈希",
    "check.billAnchor": "账单的默克尔证明指向 BillRegistry 中第 {run} 批的根",
    "check.reading": "电表 {meter} 的第 {seq} 条读数：其证明指向 ReadingLedger 中的批次根",
    "check.noReadings": "本账单未使用读数",
    "status.pass": "通过",
    "status.fail": "未通过",
    "usage.heading": "用电情况",
    "usage.byBand": "各时段电网用电（瓦时）",
    "usage.byDay": "每日用电（瓦时）",
    "usage.imported": "用电（瓦时）",
    "trades.heading": "与邻居的交易",
    "trades.id": "交易",
    "trades.side": "方向",
    "trades.slot": "交割时段",
    "trades.state": "状态",
    "trades.delivered": "已交割",
    "trades.paid": "已支付",
    "trades.none": "暂无交易。",
    "trades.buy": "买入",
    "trades.sell": "卖出",
    "tradeState.open": "未结算",
    "tradeState.settled": "已结算",
    "tradeState.refunded": "已退款",
    "downloads.heading": "下载",
    "downloads.evidence": "本账单及全部证明（JSON，可用 ledger verify-bill 核验）",
    "downloads.exportJson": "电表 {meter}：读数及证明（JSON）",
    "downloads.exportCsv": "电表 {meter}：读数（CSV）",
    "downloads.exportXml": "电表 {meter}：绿色按钮用电数据（XML）",
    "footer.api": "API 文档",
    "error.http": "网关返回 {status}：{message}",
  },
};

const I18n = (() => {
  const supported = Object.keys(MESSAGES);
  const pick = () => {
    const stored = localStorage.getItem("language");
    if (stored && supported.includes(stored)) return stored;
    for (const tag of navigator.languages || [navigator.language]) {
      if (tag.toLowerCase().startsWith("zh")) return "zh-CN";
      if (tag.toLowerCase().startsWith("en")) return "en";
    }
    return "en";
  };
  let locale = pick();
  return {
    get locale() { return locale; },
    set(next) { locale = next; localStorage.setItem("language", next); },
    t(key, params = {}) {
      const text = MESSAGES[locale][key] ?? MESSAGES.en[key] ?? key;
      return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
    },
    /** Minor units (BigInt) as an amount of the currency, formatted for the locale (where the
     * code, the grouping and the sign go) and exact: Intl formats the decimal string itself,
     * never a float. A code Intl refuses (not three letters) follows the number instead. */
    money(minor, currency) {
      const decimals = Number(currency.decimals);
      const negative = minor < 0n;
      const digits = (negative ? -minor : minor).toString().padStart(decimals + 1, "0");
      const whole = digits.slice(0, digits.length - decimals);
      const fraction = digits.slice(digits.length - decimals);
      const amount = `${negative ? "-" : ""}${whole}.${fraction || "0"}`;
      const digitsShown = { minimumFractionDigits: Math.min(2, decimals), maximumFractionDigits: decimals };
      try {
        return new Intl.NumberFormat(locale, { style: "currency", currency: currency.code, currencyDisplay: "code", ...digitsShown }).format(amount);
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        return `${new Intl.NumberFormat(locale, digitsShown).format(amount)} ${currency.code}`;
      }
    },
    number(value) { return new Intl.NumberFormat(locale).format(value); },
    date(seconds) { return new Intl.DateTimeFormat(locale, { dateStyle: "medium" }).format(new Date(Number(seconds) * 1000)); },
    dateTime(seconds) { return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(Number(seconds) * 1000)); },
    day(seconds) { return new Intl.DateTimeFormat(locale, { month: "short", day: "numeric" }).format(new Date(Number(seconds) * 1000)); },
  };
})();
