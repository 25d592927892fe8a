// riskgrade customer page: rating, status (with four-eyes confirmation), warnings, contract
// terms, reviews, contacts and history of one customer, in English and Chinese. Every request
// carries the signed-in token as a Bearer header; the token stays in this tab (sessionStorage).
"use strict";

const I18N = {
  en: {
    title: "Customer", switch_lang: "中文", sign_out: "Sign out", signin_title: "Sign in with your token",
    signin_help: "Analysts, approvers, auditors and scorers. The token stays in this browser tab only.",
    token: "Token", sign_in: "Sign in", customer: "Customer", as_of: "Rating date", open: "Open",
    rating: "Rating", status: "Status", pending: "Pending status change", comment: "Comment",
    approve: "Approve", reject: "Reject", propose: "Propose a status change", new_status: "New status",
    reason: "Reason", exit_by: "Exit by", propose_button: "Propose", warnings: "Early warnings",
    terms: "Contract terms", reviews: "Reviews", contacts: "Contacts", history: "History",
    signed_in_as: "{name} ({role})", since: "since {at}, confirmed by {by}", never_changed: "never changed",
    pending_text: "{from} → {to}, proposed by {by}: {why}", none: "none",
    no_rating: "No model decision at or before this date.",
    model_grade: "Model grade", notches: "Qualitative notches", override: "Override", final_grade: "Final grade",
    tier: "Tier", pd: "PD", new_credit: "New credit allowed", limit_factor: "Limit factor", reasons: "Reasons",
    yes: "yes", no: "no",
    err_401: "Token missing, unknown or expired", err_403: "Refused", err_other: "Request failed",
    statuses: { normal: "normal", watch: "watch", restricted: "restricted", suspended: "suspended", exiting: "exiting", exited: "exited" },
    cols: {
      run: "Run date", severity: "Severity", action: "Action", triggers: "Triggers", details: "Details",
      covenant: "Covenant", threshold: "Threshold", effective: "From", expiry: "Until",
      review_date: "Date", outcome: "Outcome", next: "Next review", date: "Date", channel: "Channel",
      summary: "Summary", by: "By", at: "Recorded", type: "What", detail: "Detail",
    },
  },
  zh: {
    title: "客户", switch_lang: "English", sign_out: "退出", signin_title: "使用令牌登录",
    signin_help: "分析员、审批人、审计员与评分系统。令牌仅保存在本浏览器标签页中。",
    token: "令牌", sign_in: "登录", customer: "客户", as_of: "评级日期", open: "打开",
    rating: "评级", status: "状态", pending: "待审批的状态变更", comment: "意见",
    approve: "批准", reject: "拒绝", propose: "提议状态变更", new_status: "新状态",
    reason: "理由", exit_by: "退出期限", propose_button: "提议", warnings: "预警",
    terms: "合同条款", reviews: "复评", contacts: "联系记录", history: "历史",
    signed_in_as: "{name}({role})", since: "自 {at} 起,确认人 {by}", never_changed: "从未变更",
    pending_text: "{from} → {to},提议人 {by}:{why}", none: "无",
    no_rating: "该日期及之前没有模型决策。",
    model_grade: "模型等级", notches: "定性调整", override: "人工调整", final_grade: "最终等级",
    tier: "类别", pd: "违约概率", new_credit: "允许新增授信", limit_factor: "额度系数", reasons: "原因",
    yes: "是", no: "否",
    err_401: "令牌缺失、未知或已过期", err_403: "拒绝访问", err_other: "请求失败",
    statuses: { normal: "正常", watch: "关注", restricted: "限制", suspended: "暂停", exiting: "退出中", exited: "已退出" },
    cols: {
      run: "监测日期", severity: "严重程度", action: "建议措施", triggers: "触发项", details: "详情",
      covenant: "契约条款", threshold: "阈值", effective: "生效", expiry: "截止",
      review_date: "日期", outcome: "结论", next: "下次复评", date: "日期", channel: "方式",
      summary: "摘要", by: "记录人", at: "记录时间", type: "事项", detail: "详情",
    },
  },
};
const STATUSES = ["normal", "watch", "restricted", "suspended", "exiting", "exited"];
const TOKEN_KEY = "riskgrade.customer.token";
const LANG_KEY = "riskgrade.review.lang";
const state = {
  lang: localStorage.getItem(LANG_KEY) || (navigator.language.startsWith("zh") ? "zh" : "en"),
  token: sessionStorage.getItem(TOKEN_KEY) || "", me: null, customer: null, data: null,
};
const $ = (id) => document.getElementById(id);
function t(key, vars) {
  let text = I18N[state.lang][key] ?? I18N.en[key] ?? key;
  for (const [name, value] of Object.entries(vars || {})) text = text.replaceAll(`{${name}}`, String(value ?? ""));
  return text;
}
const statusName = (s) => I18N[state.lang].statuses[s] || s || "";
const col = (c) => I18N[state.lang].cols[c] || c;
function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}
class ApiError extends Error { constructor(status, code, message) { super(message); this.status = status; this.code = code; } }
async function api(path, options = {}) {
  const url = new URL(path, new URL("/", document.baseURI));
  for (const [k, v] of Object.entries(options.params || {})) if (v) url.searchParams.set(k, v);
  const init = { headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store" };
  if (options.body) { init.method = "POST"; init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(options.body); }
  const response = await fetch(url, init);
  if (!response.ok) {
    let code = "http_error", message = response.statusText;
    try { const body = await response.json(); code = body.error.code; message = body.error.message; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, code, message);
  }
  return response.json();
}
function errorText(error) {
  if (error.status === 401) return `${t("err_401")} (401)`;
  if (error.status === 403) return `${t("err_403")} (403 ${error.code}: ${error.message})`;
  return `${t("err_other")}: ${error.status || ""} ${error.code || ""} ${error.message}`;
}
function showError(id, error) { const node = $(id); node.textContent = error ? errorText(error) : ""; node.hidden = !error; }
const optional = (promise) => promise.catch((error) => (error.status === 404 ? null : Promise.reject(error)));

function table(id, columns, rows) {
  const head = el("tr", {}, columns.map(([key]) => el("th", { text: col(key) })));
  const body = rows.length
    ? rows.map((row) => el("tr", {}, columns.map(([, get]) => el("td", { text: String(get(row) ?? "") }))))
    : [el("tr", {}, [el("td", { class: "muted", colspan: String(columns.length), text: t("none") })])];
  $(id).replaceChildren(el("thead", {}, [head]), el("tbody", {}, body));
}

function renderRating(rating) {
  const kv = $("rating");
  if (!rating) { kv.replaceChildren(el("dd", { class: "muted", text: t("no_rating") })); return; }
  const policy = rating.policy || {};
  const reasons = (rating.reasons || []).map((r) => (state.lang === "zh" ? r.text_zh : r.text_en) || r.code).join("; ");
  const rows = [
    ["model_grade", rating.model_grade], ["notches", rating.qualitative_notches],
    ["override", rating.override ? `${rating.override.proposed_grade || rating.override.grade} (${rating.override.proposer} / ${rating.override.decided_by})` : "—"],
    ["final_grade", rating.final_grade], ["tier", rating.tier], ["pd", rating.pd == null ? "" : `${(100 * rating.pd).toFixed(2)}%`],
    ["new_credit", policy.new_credit_allowed ? t("yes") : t("no")], ["limit_factor", policy.credit_limit_factor],
    ["reasons", reasons || "—"],
  ];
  kv.replaceChildren(...rows.flatMap(([key, value]) => [el("dt", { text: t(key) }), el("dd", { id: `r-${key}`, text: String(value ?? "") })]));
}

function renderStatus(status) {
  const badge = $("status-badge");
  badge.textContent = statusName(status.status);
  badge.className = `badge tier-${{ normal: "low", watch: "medium", restricted: "high" }[status.status] || "restricted"}`;
  badge.dataset.status = status.status;
  $("status-since").textContent = status.change
    ? t("since", { at: status.change.effective_at.slice(0, 16).replace("T", " "), by: status.change.confirmed_by || status.change.proposer })
    : t("never_changed");
  const pending = status.pending;
  $("pending").hidden = !pending;
  if (pending) {
    $("pending-text").textContent = t("pending_text", {
      from: statusName(pending.payload.from), to: statusName(pending.payload.to), by: pending.proposer, why: pending.comment,
    });
    $("pending").dataset.changeId = pending.proposal_id;
  }
  $("s-status").replaceChildren(...STATUSES.filter((s) => s !== status.status).map((s) => el("option", { value: s, text: statusName(s) })));
}

function render() {
  const d = state.data;
  if (!d) return;
  $("customer").hidden = false;
  renderRating(d.rating);
  renderStatus(d.status);
  table("warnings", [["run", (w) => w.as_of], ["severity", (w) => w.severity], ["action", (w) => w.action],
    ["triggers", (w) => (w.triggers || []).join(", ")], ["details", (w) => (w.details || []).join("; ")]], d.warnings.warnings);
  table("terms", [["covenant", (r) => r.covenant], ["threshold", (r) => r.threshold], ["effective", (r) => r.effective_date],
    ["expiry", (r) => r.expiry_date || "—"]], d.records.terms);
  table("reviews", [["review_date", (r) => r.review_date], ["outcome", (r) => r.outcome], ["next", (r) => r.next_review_date]], d.records.reviews);
  table("contacts", [["date", (r) => r.date], ["channel", (r) => r.channel], ["summary", (r) => r.summary], ["by", (r) => r.recorded_by]], d.records.contacts);
  table("history", [["at", (h) => String(h.at).slice(0, 19).replace("T", " ")], ["type", (h) => h.type], ["by", (h) => h.actor],
    ["detail", (h) => h.comment || (h.final_grade ? `${h.model_grade} → ${h.final_grade} (${h.tier})` : "")]], d.history.history);
}

async function load() {
  const id = $("c-id").value.trim();
  if (!id) return;
  const asOf = $("c-asof").value;
  const base = `customers/${encodeURIComponent(id)}`;
  try {
    const [rating, status, records, warnings, history] = await Promise.all([
      optional(api(`${base}/rating`, { params: { as_of: asOf } })), api(`${base}/status`, { params: { as_of: asOf } }),
      api(`${base}/records`), api(`${base}/warnings`), api(`${base}/history`),
    ]);
    state.customer = id;
    state.data = { rating, status, records, warnings, history };
    showError("load-error", null);
    render();
  } catch (error) { showError("load-error", error); }
}

async function decideStatus(approve) {
  const changeId = $("pending").dataset.changeId;
  const comment = $("decision-comment").value.trim() || (approve ? "approved" : "rejected");
  try {
    await api(`status-changes/${encodeURIComponent(changeId)}/${approve ? "approve" : "reject"}`, { body: { comment } });
    showError("decision-error", null);
    await load();
  } catch (error) { showError("decision-error", error); }
}

async function proposeStatus(event) {
  event.preventDefault();
  const body = { status: $("s-status").value, reason: $("s-reason").value.trim() };
  if ($("s-exit").value) body.exit_by = $("s-exit").value;
  try {
    await api(`customers/${encodeURIComponent(state.customer)}/status`, { body });
    showError("propose-error", null);
    await load();
  } catch (error) { showError("propose-error", error); }
}

function applyLang() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  if (state.me) $("who").textContent = t("signed_in_as", state.me);
  render();
}

async function signIn(token) {
  state.token = token;
  state.me = await api("me");
  sessionStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true; $("app").hidden = false; $("sign-out").hidden = false;
  $("who").textContent = t("signed_in_as", state.me);
  showError("signin-error", null);
  const wanted = new URLSearchParams(location.search).get("customer");
  if (wanted) { $("c-id").value = wanted; await load(); }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, { token: "", me: null, customer: null, data: null });
  $("app").hidden = true; $("customer").hidden = true; $("signin").hidden = false; $("sign-out").hidden = true;
  $("who").textContent = ""; $("token").value = "";
}

document.addEventListener("DOMContentLoaded", () => {
  applyLang();
  $("lang-toggle").addEventListener("click", () => { state.lang = state.lang === "zh" ? "en" : "zh"; localStorage.setItem(LANG_KEY, state.lang); applyLang(); });
  $("sign-out").addEventListener("click", signOut);
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    try { await signIn(token); } catch (error) { state.token = ""; showError("signin-error", error); }
  });
  $("customer-form").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  $("approve-button").addEventListener("click", () => decideStatus(true));
  $("reject-button").addEventListener("click", () => decideStatus(false));
  $("status-form").addEventListener("submit", proposeStatus);
  if (state.token) signIn(state.token).catch(() => { state.token = ""; sessionStorage.removeItem(TOKEN_KEY); });
});
