// riskgrade decision review: auditors review decisions read-only; approvers decide on the
// pending overrides (no build step, no external network).
// Every data request carries the auditor token as a Bearer header; the token is kept in
// sessionStorage (this tab only). Data is inserted with textContent, never as HTML.
"use strict";

const I18N = {
  en: {
    title: "Decision review", switch_lang: "中文", sign_out: "Sign out",
    signin_title: "Sign in with an auditor token",
    signin_help: "The token stays in this browser tab only and is sent as a Bearer token with each request. This page is read-only.",
    token: "Auditor token", sign_in: "Sign in", customer: "Customer", from: "Recorded from", to: "Recorded to",
    rated_from: "Rated from", rated_to: "Rated to",
    tier: "Tier", model_version: "Model version", any: "any", search: "Search",
    export_range: "Export results (JSON)", export_one: "Export decision (JSON)",
    time: "Time (UTC)", as_of: "As of", grade: "Grade", kind: "Kind", prev: "Previous", next: "Next",
    decision: "Decision", close: "Close", integrity: "Audit chain", model: "Model",
    waterfall: "Explanation on the tier bands", factor: "Factor", group: "Group",
    contribution: "Contribution (log-odds)", grade_after: "Grade after", tier_after: "Tier after",
    crossings: "Boundaries crossed", reasons: "Reasons", features: "Features", feature: "Feature",
    value: "Value", inputs: "Inputs (request as recorded)", show_inputs: "Show the raw inputs",
    footer: "Read-only view of the tamper-evident audit log.",
    signed_in_as: "Signed in, {n} decisions in the log; service model {m}",
    err_missing_token: "Enter a token.",
    err_401: "Token not accepted (invalid or revoked).",
    err_403: "Access refused: this token has neither the auditor nor an approver role.",
    err_other: "Request failed",
    found: "{total} decisions found, showing {a}–{b}", none_found: "No decision matches.",
    chain_ok: "Audit chain verified: {n} records, {c} checkpoints, intact.",
    chain_bad: "Audit chain BROKEN at record {id}: {p}",
    record_ok: "This record: hash and link to the previous record verify.",
    record_bad: "This record FAILS verification: {p}",
    pd: "PD", score: "Score", model_tier: "Model tier", policy: "Credit policy",
    caller: "Caller", created_at: "Recorded at (UTC)", decision_id: "Decision id",
    version: "Version", bundle_hash: "Bundle hash", policy_version: "Policy version",
    trained_at: "Trained at", metrics: "Validation metrics", loaded_yes: "loaded by this service",
    loaded_no: "not the model loaded by this service",
    open_report: "Open the validation report", report_missing: "Validation report not available: {why}",
    expl_stored: "Explanation as given with the decision.",
    expl_recomputed: "Recomputed from the stored features with the recorded model (PD {pd}, {match}).",
    expl_match: "matches the record", expl_mismatch: "DIFFERS from the record",
    expl_missing: "Waterfall not available: {why}",
    distance: "{d} log-odds from the next better tier ({t}); standing in the way: {f}.",
    best_tier: "Already in the best tier.", not_sufficient: "(removing all of them would not be enough)",
    hard_rules: "Hard rules (force the restricted tier): {r}", no_reasons: "No adverse reason.",
    limit_factor: "limit factor", max_term: "max payment term (days)", collateral: "collateral required",
    guarantee: "guarantee required", no_new_credit: "no new credit", exit_review: "exit review",
    review: "review every (days)",
    tiers: { low: "low", medium: "medium", high: "high", restricted: "restricted" },
    groups: { financial: "financial", credit: "credit", transaction: "transaction", profile: "profile", hard_rule: "hard rule", default: "in default" },
    kinds: { score: "score", explain: "explain" },
    queue_title: "Pending overrides and expert ratings", q_kind: "Kind", q_grades: "Grade",
    q_reason: "Reason", q_proposer: "Proposed by", q_comment: "Comment", q_decision: "Your decision",
    q_count: "{n} pending.", q_none: "Nothing pending.", approve: "Approve", reject: "Reject",
    q_comment_placeholder: "Reason for your decision", q_need_comment: "Write the reason for your decision first.",
    q_done: "{kind} {id} {status} by {who}.",
    okinds: { override: "override", expert_rating: "expert rating" },
    statuses: { approved: "approved", rejected: "rejected", pending: "pending", expired: "expired" },
    judgement: "Rating chain and human judgement", j_factor: "Qualitative factor", j_answer: "Answer",
    model_grade: "Model grade", qualitative: "Qualitative assessment", override: "Override",
    final_grade: "Final grade", final_tier: "Final tier", no_assessment: "none valid at this date",
    no_override: "none approved and valid at this date",
    assessment_text: "{n} notch(es) by {who} on {day} (score {score}){comment}",
    override_text: "{base} → {grade} ({reason}), proposed by {proposer}: “{pc}”; {status} by {approver}: “{ac}”",
    provisional: "insufficient data: provisional tier until an expert rating",
  },
  zh: {
    title: "决策审阅", switch_lang: "English", sign_out: "退出",
    signin_title: "使用审计员令牌登录",
    signin_help: "令牌仅保存在本浏览器标签页中，并作为 Bearer 令牌随每个请求发送。本页面只读。",
    token: "审计员令牌", sign_in: "登录", customer: "客户", from: "记录起始日期", to: "记录截止日期",
    rated_from: "评级基准日起", rated_to: "评级基准日止",
    tier: "风险等级", model_version: "模型版本", any: "全部", search: "查询",
    export_range: "导出结果（JSON）", export_one: "导出该决策（JSON）",
    time: "时间（UTC）", as_of: "评级基准日", grade: "评级", kind: "类型", prev: "上一页", next: "下一页",
    decision: "决策", close: "关闭", integrity: "审计链", model: "模型",
    waterfall: "基于风险等级区间的解释", factor: "因素", group: "类别",
    contribution: "贡献（对数几率）", grade_after: "之后评级", tier_after: "之后等级",
    crossings: "跨越的边界", reasons: "原因", features: "特征", feature: "特征",
    value: "取值", inputs: "输入（记录的请求）", show_inputs: "显示原始输入",
    footer: "防篡改审计日志的只读视图。",
    signed_in_as: "已登录，日志中共 {n} 条决策；服务当前模型 {m}",
    err_missing_token: "请输入令牌。",
    err_401: "令牌无效或已吊销。",
    err_403: "拒绝访问：该令牌既不具备审计员角色，也不具备审批角色。",
    err_other: "请求失败",
    found: "共找到 {total} 条决策，显示第 {a}–{b} 条", none_found: "没有符合条件的决策。",
    chain_ok: "审计链校验通过：{n} 条记录，{c} 个检查点，完整无损。",
    chain_bad: "审计链在第 {id} 条记录处被破坏：{p}",
    record_ok: "本记录：哈希值及与上一条记录的链接均校验通过。",
    record_bad: "本记录校验失败：{p}",
    pd: "违约概率", score: "评分", model_tier: "模型等级", policy: "信用政策",
    caller: "调用方", created_at: "记录时间（UTC）", decision_id: "决策编号",
    version: "版本", bundle_hash: "模型包哈希", policy_version: "政策版本",
    trained_at: "训练时间", metrics: "验证指标", loaded_yes: "为本服务当前加载的模型",
    loaded_no: "不是本服务当前加载的模型",
    open_report: "打开验证报告", report_missing: "验证报告不可用：{why}",
    expl_stored: "决策时给出的解释。",
    expl_recomputed: "使用记录的模型根据存储的特征重新计算（违约概率 {pd}，{match}）。",
    expl_match: "与记录一致", expl_mismatch: "与记录不一致",
    expl_missing: "瀑布图不可用：{why}",
    distance: "距上一更优等级（{t}）还差 {d} 对数几率；主要阻碍因素：{f}。",
    best_tier: "已处于最优等级。", not_sufficient: "（即使全部消除也不足以升级）",
    hard_rules: "硬性规则（强制列为限制类）：{r}", no_reasons: "无不利原因。",
    limit_factor: "额度系数", max_term: "最长账期（天）", collateral: "需要抵押",
    guarantee: "需要担保", no_new_credit: "不得新增授信", exit_review: "进入退出机制审查",
    review: "复审周期（天）",
    tiers: { low: "低风险", medium: "中风险", high: "高风险", restricted: "限制类" },
    groups: { financial: "财务", credit: "信用", transaction: "交易", profile: "概况", hard_rule: "硬性规则", default: "违约" },
    kinds: { score: "评分", explain: "评分并解释" },
    queue_title: "待审批的人工调整与专家评级", q_kind: "类型", q_grades: "评级",
    q_reason: "原因", q_proposer: "提议人", q_comment: "说明", q_decision: "您的决定",
    q_count: "共 {n} 项待审批。", q_none: "没有待审批事项。", approve: "批准", reject: "驳回",
    q_comment_placeholder: "决定理由", q_need_comment: "请先填写决定理由。",
    q_done: "{kind} {id} 已由 {who} {status}。",
    okinds: { override: "人工调整", expert_rating: "专家评级" },
    statuses: { approved: "批准", rejected: "驳回", pending: "待审批", expired: "已过期" },
    judgement: "评级链与人工判断", j_factor: "定性因素", j_answer: "评估结果",
    model_grade: "模型评级", qualitative: "定性评估", override: "人工调整",
    final_grade: "最终评级", final_tier: "最终风险等级", no_assessment: "该日无有效评估",
    no_override: "该日无已批准且有效的调整",
    assessment_text: "{who} 于 {day} 评估，调整 {n} 级（得分 {score}）{comment}",
    override_text: "{base} → {grade}（{reason}），提议人 {proposer}：“{pc}”；{approver} {status}：“{ac}”",
    provisional: "数据不足：专家评级前为临时等级",
  },
};

const TOKEN_KEY = "riskgrade.review.token";
const LANG_KEY = "riskgrade.review.lang";
const PAGE_SIZE = 25;
const state = {
  lang: localStorage.getItem(LANG_KEY) || (navigator.language.startsWith("zh") ? "zh" : "en"),
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  offset: 0, total: 0, filters: {}, detail: null, chain: null, facets: null,
};

const $ = (id) => document.getElementById(id);
function t(key, vars) {
  let text = I18N[state.lang][key] ?? I18N.en[key] ?? key;
  for (const [name, value] of Object.entries(vars || {})) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}
const tierName = (tier) => (I18N[state.lang].tiers[tier] || tier || "");
const groupName = (group) => (I18N[state.lang].groups[group] || group || "");
const kindName = (kind) => (I18N[state.lang].kinds[kind] || kind || "");
// A factor reads as its feature spec's description; the internal name stays, small, for auditors.
const factorText = (name) => { const f = (state.detail?.factors || {})[name]; return f ? (state.lang === "zh" ? f.zh : f.en) : null; };
function factorCell(name) {
  const text = factorText(name);
  const name_ = el("small", { class: "factor-name", text: name });
  return el("td", { class: "factor", title: name }, text ? [el("span", { text }), " ", name_] : [name_]);
}
const pct = (p) => (p == null ? "" : `${(100 * p).toFixed(p < 0.001 ? 3 : 2)}%`);
const num = (v, digits = 4) => (v == null ? "—" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits }));

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

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, params, body) {
  const url = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(params || {})) if (value !== "" && value != null) url.searchParams.set(key, value);
  const init = { headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST"; init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  if (!response.ok) {
    let code = "http_error", message = response.statusText;
    try { const body = await response.json(); code = body.error.code; message = body.error.message; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, code, message);
  }
  return response;
}
const apiJson = async (path, params, body) => (await api(path, params, body)).json();

function errorText(error) {
  if (error.status === 401) return `${t("err_401")} (401)`;
  if (error.code && !["forbidden", "http_error"].includes(error.code)) return `${error.status} ${error.code}: ${error.message}`;
  if (error.status === 403) return `${t("err_403")} (403: ${error.message})`;
  return `${t("err_other")}: ${error.status || ""} ${error.message}`;
}
function showError(id, error) { const node = $(id); node.textContent = error ? errorText(error) : ""; node.hidden = !error; }

function applyLang() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  if (state.facets) fillFacets(state.facets);
  if (state.lastPage) renderResults(state.lastPage);
  if (state.chain) renderChain(state.chain);
  if (state.detail) renderDetail(state.detail);
  if (state.queue) renderQueue();
}

// -- sign in -------------------------------------------------------------------------------
async function signIn(token) {
  state.token = token;
  // An auditor reviews decisions; an approver (or senior approver) decides on the queue.
  let facets = null, queue = null, refused = null;
  try { facets = await apiJson("api/facets"); } catch (error) { if (error.status !== 403) throw error; refused = error; }
  try { queue = await apiJson("../overrides", { status: "pending" }); } catch (error) { if (error.status !== 403) throw error; }
  if (!facets && !queue) throw refused;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true; $("sign-out").hidden = false;
  showError("signin-error", null);
  if (queue) { state.queue = queue.overrides; renderQueue(); $("queue").hidden = false; }
  if (facets) {
    state.facets = facets;
    $("app").hidden = false;
    fillFacets(facets);
    await Promise.all([search(0), refreshChain()]);
  }
}

// -- the approvers' queue ------------------------------------------------------------------
async function refreshQueue() {
  try { state.queue = (await apiJson("../overrides", { status: "pending" })).overrides; renderQueue(); }
  catch (error) { showError("queue-error", error); }
}

function renderQueue() {
  const items = state.queue || [];
  $("queue-info").textContent = items.length ? t("q_count", { n: items.length }) : t("q_none");
  $("queue-table").querySelector("tbody").replaceChildren(...items.map((o) => {
    const comment = el("input", { type: "text", maxlength: "4000", class: "decision-comment", placeholder: t("q_comment_placeholder"), "aria-label": t("q_comment_placeholder") });
    const approve = el("button", { type: "button", class: "approve", text: t("approve") });
    const reject = el("button", { type: "button", class: "secondary reject", text: t("reject") });
    approve.addEventListener("click", () => decide(o, "approve", comment.value));
    reject.addEventListener("click", () => decide(o, "reject", comment.value));
    return el("tr", { "data-override": o.override_id }, [
      el("td", { text: o.customer_id }), el("td", { text: o.as_of }),
      el("td", { text: (I18N[state.lang].okinds[o.kind] || o.kind) }),
      el("td", { text: `${o.base_grade} → ${o.proposed_grade} (${o.notches > 0 ? "+" : ""}${o.notches})` }),
      el("td", { text: o.reason_code }), el("td", { text: o.proposer }), el("td", { text: o.comment }),
      el("td", { class: "decide" }, [comment, " ", approve, " ", reject]),
    ]);
  }));
}

async function decide(override, action, comment) {
  $("queue-message").hidden = true;
  if (!comment.trim()) { $("queue-error").textContent = t("q_need_comment"); $("queue-error").hidden = false; return; }
  try {
    const done = await apiJson(`../overrides/${encodeURIComponent(override.override_id)}/${action}`, null, { comment });
    showError("queue-error", null);
    $("queue-message").textContent = t("q_done", {
      kind: I18N[state.lang].okinds[done.kind] || done.kind, id: done.override_id.slice(0, 8),
      status: I18N[state.lang].statuses[done.status] || done.status, who: done.decided_by,
    });
    $("queue-message").hidden = false;
  } catch (error) { showError("queue-error", error); }
  await refreshQueue();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, { token: "", detail: null, chain: null, facets: null, lastPage: null, queue: null });
  $("queue").hidden = true; $("queue-message").hidden = true; $("queue-error").hidden = true;
  $("app").hidden = true; $("detail").hidden = true; $("signin").hidden = false; $("sign-out").hidden = true;
  $("who").textContent = ""; $("token").value = "";
}

function fillFacets(facets) {
  $("who").textContent = t("signed_in_as", { n: facets.records, m: facets.loaded_model || "—" });
  for (const [id, values, label] of [["f-tier", facets.tiers, tierName], ["f-model", facets.model_versions, (v) => v]]) {
    const select = $(id); const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: t("any") }), ...values.map((v) => el("option", { value: v, text: label(v) })));
    select.value = chosen;
  }
}

// -- search --------------------------------------------------------------------------------
function readFilters() {
  const form = new FormData($("search-form"));
  const filters = {};
  for (const [key, value] of form.entries()) if (String(value).trim()) filters[key] = String(value).trim();
  return filters;
}

async function search(offset) {
  state.filters = readFilters();
  try {
    const page = await apiJson("api/decisions", { ...state.filters, limit: PAGE_SIZE, offset });
    state.offset = offset; state.lastPage = page;
    showError("app-error", null);
    renderResults(page);
  } catch (error) { showError("app-error", error); }
}

function renderResults(page) {
  const body = $("results").querySelector("tbody");
  body.replaceChildren(...page.records.map((r) => {
    const row = el("tr", { tabindex: "0", "data-id": String(r.id), class: `tier-${r.tier}` }, [
      el("td", { text: String(r.id) }), el("td", { text: r.created_at.replace("T", " ").slice(0, 19) }),
      el("td", { text: r.customer_id }), el("td", { text: r.as_of || "" }), el("td", { class: "num", text: pct(r.pd) }),
      el("td", { text: r.grade }), el("td", {}, [el("span", { class: `badge tier-${r.tier}`, text: tierName(r.tier) })]),
      el("td", { text: r.model_version }), el("td", { text: kindName(r.kind), "data-kind": r.kind }),
    ]);
    row.addEventListener("click", () => openDetail(r.id));
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(r.id); });
    return row;
  }));
  $("search-info").textContent = page.total
    ? t("found", { total: page.total, a: page.offset + 1, b: page.offset + page.records.length })
    : t("none_found");
  $("prev-page").disabled = page.offset <= 0;
  $("next-page").disabled = page.offset + page.records.length >= page.total;
}

async function refreshChain() {
  try { state.chain = await apiJson("api/chain"); renderChain(state.chain); } catch (error) { showError("app-error", error); }
}
function chainText(chain) {
  return chain.ok ? t("chain_ok", { n: chain.records, c: chain.checkpoints }) : t("chain_bad", { id: chain.first_bad_id, p: chain.problem });
}
function renderChain(chain) {
  for (const id of ["chain-status", "d-chain-check"]) {
    $(id).textContent = chainText(chain);
    $(id).className = `chain ${chain.ok ? "ok" : "bad"}`;
  }
}

// -- one decision --------------------------------------------------------------------------
async function openDetail(id) {
  try {
    state.detail = await apiJson(`api/decisions/${encodeURIComponent(id)}`);
    showError("app-error", null);
    renderDetail(state.detail);
    $("detail").hidden = false;
    $("detail").scrollIntoView({ behavior: "instant", block: "start" });
    refreshChain();
  } catch (error) { showError("app-error", error); }
}

function kv(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([key, value]) => [el("dt", { text: t(key) }), el("dd", {}, [value instanceof Node ? value : String(value ?? "—")])]));
}

function renderDetail(d) {
  const r = d.record, dec = d.decision, policy = dec.policy || {};
  $("d-id").textContent = `#${r.id} · ${r.customer_id}`;
  kv($("d-summary"), [
    ["customer", r.customer_id], ["as_of", dec.as_of], ["pd", pct(r.pd)], ["score", dec.score], ["grade", r.grade],
    ["tier", el("span", { class: `badge tier-${r.tier}`, text: tierName(r.tier) })], ["model_tier", tierName(dec.model_tier)],
    ["policy", [`${t("limit_factor")} ${policy.credit_limit_factor ?? "—"}`, `${t("max_term")} ${policy.max_payment_term_days ?? "—"}`,
      `${t("review")} ${policy.review_frequency_days ?? "—"}`, policy.collateral_required ? t("collateral") : null,
      policy.guarantee_required ? t("guarantee") : null, policy.new_credit_allowed === false ? t("no_new_credit") : null,
      policy.exit_review ? t("exit_review") : null].filter(Boolean).join(" · ")],
    ["kind", kindName(r.kind)], ["caller", r.caller], ["created_at", r.created_at], ["decision_id", r.decision_id],
  ]);
  renderJudgement(d.judgement);
  const check = d.record_check;
  $("d-record-check").textContent = check.ok ? t("record_ok") : t("record_bad", { p: check.problem });
  $("d-record-check").className = `chain ${check.ok ? "ok" : "bad"}`;
  if (state.chain) renderChain(state.chain);
  const m = d.model;
  const modelPairs = [["version", m.version], ["bundle_hash", m.bundle_hash.slice(0, 16) + "…"], ["policy_version", m.policy_version],
    ["model", m.loaded ? t("loaded_yes") : t("loaded_no")]];
  if (m.trained_at) modelPairs.push(["trained_at", m.trained_at]);
  if (m.metrics && Object.keys(m.metrics).length) modelPairs.push(["metrics", Object.entries(m.metrics).map(([k, v]) => `${k} ${num(v, 3)}`).join(" · ")]);
  kv($("d-model"), modelPairs);
  const report = $("d-report");
  if (m.report.available) {
    const link = el("a", { href: m.report.external ? m.report.url : "#", id: "report-link", text: t("open_report") });
    if (m.report.external) { link.target = "_blank"; link.rel = "noopener noreferrer"; }
    else link.addEventListener("click", (e) => { e.preventDefault(); openReport(m.report.url); });
    report.replaceChildren(link);
  } else report.textContent = t("report_missing", { why: m.report.why });

  const x = d.explanation, img = $("d-waterfall");
  if (x.available) {
    img.src = `data:image/svg+xml;base64,${x.svg_base64}`; img.hidden = false;
    $("d-expl-note").textContent = x.source === "stored" ? t("expl_stored")
      : t("expl_recomputed", { pd: pct(x.recomputed_pd), match: x.matches_record ? t("expl_match") : t("expl_mismatch") });
    $("d-steps").querySelector("tbody").replaceChildren(...x.steps.map((s) => el("tr", { class: s.contribution > 0 ? "up" : "down" }, [
      factorCell(s.feature), el("td", { text: groupName(s.group) }), el("td", { class: "num", text: (s.contribution > 0 ? "+" : "") + num(s.contribution, 3) }),
      el("td", { text: s.grade_after }), el("td", { text: tierName(s.tier_after) }),
      el("td", { text: [...s.tier_crossings.map((c) => c.split("/").map(tierName).join("/")), ...s.grade_crossings].join(", ") }),
    ])));
    $("d-distance").textContent = x.next_better_tier
      ? t("distance", { d: num(x.distance_to_next_better_tier, 3), t: tierName(x.next_better_tier), f: x.blocking_factors.map((b) => factorText(b.feature) || b.feature).join(", ") || "—" })
        + (x.blocking_sufficient === false ? ` ${t("not_sufficient")}` : "")
      : t("best_tier");
  } else {
    img.removeAttribute("src"); img.hidden = true;
    $("d-expl-note").textContent = t("expl_missing", { why: x.why });
    $("d-steps").querySelector("tbody").replaceChildren(); $("d-distance").textContent = "";
  }
  $("d-reasons").replaceChildren(...(d.reasons.length ? d.reasons.map((reason) => el("li", {}, [
    el("code", { text: reason.code }), " ",
    (state.lang === "zh" ? reason.text_zh : reason.text_en) || reason.text,
    reason.label ? ` (${reason.label})` : "",
    el("span", { class: "muted", text: reason.contribution == null ? ` (${groupName(reason.group)})` : ` (${groupName(reason.group)}, +${num(reason.contribution, 3)})` }),
  ])) : [el("li", { class: "muted", text: t("no_reasons") })]));
  const rules = dec.hard_rules || [];
  $("d-hard-rules").textContent = rules.length ? t("hard_rules", { r: rules.map((h) => `${h.code} ${h.text}`).join("; ") }) : "";
  $("d-features").querySelector("tbody").replaceChildren(...d.features.map((f) => el("tr", {}, [
    factorCell(f.name),
    el("td", { text: groupName(f.group) }), el("td", { class: "num", text: f.label ?? num(f.value) }),
    el("td", { class: `num ${f.contribution > 0 ? "up" : f.contribution < 0 ? "down" : ""}`, text: f.contribution == null ? "—" : num(f.contribution, 4) }),
  ])));
  $("d-inputs").textContent = JSON.stringify(d.inputs, null, 2);
}

function renderJudgement(j) {
  const answers = $("d-answers").querySelector("tbody");
  if (!j) { kv($("d-judgement"), []); answers.replaceChildren(); return; }
  const a = j.assessment, o = j.override;
  const pairs = [
    ["model_grade", j.model_grade],
    ["qualitative", a ? t("assessment_text", { n: (a.notches > 0 ? "+" : "") + a.notches, who: a.analyst, day: a.as_of,
      score: num(a.score, 3), comment: a.comment ? ` “${a.comment}”` : "" }) : t("no_assessment")],
    ["override", o ? t("override_text", { base: o.base_grade, grade: o.proposed_grade, reason: o.reason_code, proposer: o.proposer,
      pc: o.comment, status: I18N[state.lang].statuses[o.status] || o.status, approver: o.decided_by, ac: o.decision_comment || "" }) : t("no_override")],
    ["final_grade", el("strong", { id: "d-final-grade", text: j.final_grade })],
    ["final_tier", el("span", { class: `badge tier-${j.tier}`, text: tierName(j.tier) + (j.provisional ? ` (${t("provisional")})` : "") })],
  ];
  kv($("d-judgement"), pairs);
  answers.replaceChildren(...Object.entries(a ? a.answers : {}).map(([factor, answer]) => el("tr", {}, [el("td", { text: factor }), el("td", { text: answer })])));
}

async function openReport(path) {
  try {
    const html = await (await api(path)).blob();
    const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    window.open(url, "_blank", "noopener");
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) { showError("app-error", error); }
}

async function download(params, fallbackName) {
  try {
    const response = await api("api/export", params);
    const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: match ? match[1] : fallbackName });
    document.body.append(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    showError("app-error", null);
  } catch (error) { showError("app-error", error); }
}

// -- wiring --------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  applyLang();
  $("lang-toggle").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh"; localStorage.setItem(LANG_KEY, state.lang); applyLang();
  });
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) { $("signin-error").textContent = t("err_missing_token"); $("signin-error").hidden = false; return; }
    try { await signIn(token); } catch (error) { state.token = ""; showError("signin-error", error); }
  });
  $("sign-out").addEventListener("click", signOut);
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); search(0); });
  $("prev-page").addEventListener("click", () => search(Math.max(0, state.offset - PAGE_SIZE)));
  $("next-page").addEventListener("click", () => search(state.offset + PAGE_SIZE));
  $("export-range").addEventListener("click", () => download(readFilters(), "decisions.json"));
  $("export-one").addEventListener("click", () => state.detail && download({ id: state.detail.record.id }, "decision.json"));
  $("close-detail").addEventListener("click", () => { $("detail").hidden = true; state.detail = null; });
  if (state.token) signIn(state.token).catch((error) => { state.token = ""; sessionStorage.removeItem(TOKEN_KEY); showError("signin-error", error); });
});
