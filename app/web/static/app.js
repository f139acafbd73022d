// aiplatform web UI: plain DOM, no build step. Every value from the API goes in through textContent (no innerHTML).
"use strict";

const API = "/api/v1";
const main = document.getElementById("main");
const session = {
  get access() { return sessionStorage.getItem("access"); },
  get refresh() { return sessionStorage.getItem("refresh"); },
  save(login) { sessionStorage.setItem("access", login.access_token); sessionStorage.setItem("refresh", login.refresh_token); },
  clear() { sessionStorage.clear(); },
};
// Each navigation opens a new view scope; a render or refresh loop of an older view finds itself stale and stops,
// so a slow fetch of the page just left can never draw over the page just opened.
let generation = 0;
function openView() {
  const mine = ++generation;
  const live = () => mine === generation;
  return {
    live,
    show(...sections) { if (live()) main.replaceChildren(...sections); return live(); },
    every(ms, fn) {
      const loop = setInterval(async () => { if (!live()) return clearInterval(loop); await act(fn)(); }, ms);
      return () => clearInterval(loop);
    },
  };
}

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) el.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return el;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 6000);
}

async function api(method, path, body, retry = true) {
  const headers = session.access ? { Authorization: `Bearer ${session.access}` } : {};
  let payload = body;
  if (body && !(body instanceof FormData) && !(body instanceof URLSearchParams)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(API + path, { method, headers, body: payload });
  if (response.status === 401 && retry && session.refresh) {
    const refreshed = await fetch(`${API}/auth/refresh`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token: session.refresh }),
    });
    if (refreshed.ok) { session.save(await refreshed.json()); return api(method, path, body, false); }
  }
  if (response.status === 401 && headers.Authorization) {
    session.clear(); route(); throw new Error("Your login ended: please log in again.");
  }
  const type = response.headers.get("content-type") || "";
  const data = response.status === 204 ? null : type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error(data && data.message ? data.message : `HTTP ${response.status}`);
  return data;
}

// Refreshes an open view every 2 s until `refresh` reports that what it shows has finished.
async function follow(view, refresh) {
  if (await refresh()) return;
  const stop = view.every(2000, async () => { if (await refresh()) stop(); });
}

function act(fn) {
  return async (event) => {
    if (event) event.preventDefault();
    try { await fn(event); } catch (e) { showError(e.message); }
  };
}

function table(headers, rows) {
  return h("table", {}, h("tr", {}, headers.map((x) => h("th", {}, x))), rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))));
}

function statusBadge(status) { return h("span", { class: `status ${status}` }, status); }
const FINISHED = ["SUCCEEDED", "FAILED", "STOPPED"];
const short = (v) => (typeof v === "number" ? Number(v.toPrecision(4)) : v);

// Line chart of metric series on a canvas: one line per metric, steps (epochs unless `axis` says) on x.
function drawChart(canvas, history, keys, axis = "epoch") {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const pad = 36, colors = ["#3160d8", "#e8710a", "#1e8e3e", "#9334e6", "#d93025", "#12a4af", "#f9ab00", "#5f6368"];
  const values = history.flatMap((row) => keys.map((k) => row[k]).filter((v) => typeof v === "number"));
  canvas.dataset.points = String(history.length);
  if (!values.length) { ctx.fillStyle = "#6b7385"; ctx.fillText("Waiting for the first metrics…", pad, height / 2); return; }
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  const steps = history.map((row) => row.step), first = Math.min(...steps), last = Math.max(...steps);
  const x = (step) => pad + ((step - first) / (last - first || 1)) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - lo) / span) * (height - 2 * pad);
  ctx.strokeStyle = "#dde1e8"; ctx.fillStyle = "#6b7385"; ctx.font = "11px system-ui";
  ctx.beginPath(); ctx.moveTo(pad, pad); ctx.lineTo(pad, height - pad); ctx.lineTo(width - pad, height - pad); ctx.stroke();
  ctx.fillText(hi.toFixed(3), 2, pad); ctx.fillText(lo.toFixed(3), 2, height - pad);
  ctx.fillText(`${axis} ${first}`, pad, height - 12); ctx.fillText(`${axis} ${last}`, width - pad - 70, height - 12);
  keys.forEach((key, i) => {
    const points = history.filter((row) => typeof row[key] === "number");
    ctx.strokeStyle = colors[i % colors.length]; ctx.fillStyle = ctx.strokeStyle; ctx.lineWidth = 2; ctx.beginPath();
    points.forEach((row, j) => { if (j === 0) ctx.moveTo(x(row.step), y(row[key])); else ctx.lineTo(x(row.step), y(row[key])); });
    ctx.stroke();
    // A dot per point: a series of one point (e.g. a trial stopped after its first epoch) still shows.
    points.forEach((row) => { ctx.beginPath(); ctx.arc(x(row.step), y(row[key]), 2.5, 0, 2 * Math.PI); ctx.fill(); });
    ctx.fillText(key, width - pad - 90, pad + 14 * i);
  });
}

function loginView() {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").textContent = "";
  const form = h("form", { id: "login", onsubmit: act(async () => {
    const body = new URLSearchParams({ username: form.username.value, password: form.password.value });
    session.save(await api("POST", "/auth/login", body, false));
    document.getElementById("error").hidden = true;
    if (location.hash === "#/jobs") route(); else location.hash = "#/jobs";  // a new hash routes by itself
  }) },
  h("label", {}, "Username", h("input", { name: "username", autocomplete: "username", required: true })),
  h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
  h("button", { type: "submit" }, "Log in"));
  main.replaceChildren(h("section", {}, h("h2", {}, "Log in"), form));
}

// Every list route answers one page ({items, total, limit, offset}); a view reads its first page of `limit` items.
async function listed(path, limit = 100) {
  return api("GET", `${path}${path.includes("?") ? "&" : "?"}limit=${limit}`);
}

function totalNote(page, what) {
  return page.total > page.items.length ? h("p", { class: "muted" }, `The first ${page.items.length} of ${page.total} ${what}.`) : "";
}

async function datasetsView(view, versionId) {
  if (versionId) return versionView(view, versionId);
  const datasetPage = await listed("/dataset", 500), datasets = datasetPage.items;
  const create = h("form", { onsubmit: act(async () => {
    const dataset = await api("POST", "/dataset", { name: create.name.value, description: "" });
    const file = create.file.files[0];
    if (file) {
      const data = new FormData(); data.append("file", file);
      await api("POST", `/dataset/${dataset.id}/version`, data);
    }
    route();
  }) },
  h("label", {}, "Name", h("input", { name: "name", required: true })),
  h("label", {}, "CSV file", h("input", { name: "file", type: "file", accept: ".csv" })),
  h("button", { type: "submit" }, "Create"));
  const rows = datasets.map((d) => {
    const latest = d.versions[d.versions.length - 1];
    const versions = h("span", { class: "versions" }, d.versions.flatMap((v) => [h("a", { href: `#/datasets/${v.id}` }, `v${v.version}`), " "]));
    return [d.id, d.name, versions, latest ? `${latest.num_rows} rows, ${latest.columns.length} columns` : "no version", d.created_at.slice(0, 19)];
  });
  view.show(
    h("section", {}, h("h2", {}, "Datasets"), table(["Id", "Name", "Versions", "Latest", "Created"], rows), totalNote(datasetPage, "datasets")),
    h("section", {}, h("h2", {}, "New dataset"), create));
}

// One dataset version: its profile (computed once, after upload) and its quality reports, with a check to run.
async function versionView(view, id) {
  const version = await api("GET", `/dataset/version/${id}`);
  const reports = h("div", { id: "quality-reports" }), score = h("p", { id: "quality-score", class: "muted" });
  const run = h("button", { id: "run-quality", onclick: act(async () => {
    const report = await api("POST", `/dataset/version/${id}/quality`, {});
    score.textContent = `Quality check ${report.id}: ${report.status}`;
    await refreshReports();
  }) }, "Run quality check");
  async function refreshReports() {
    const found = (await listed(`/dataset/version/${id}/quality`)).items;
    reports.replaceChildren(found.length ? table(["Id", "Status", "Score", "Created", "Message"], found.map((r) => [
      r.id, statusBadge(r.status), r.score === null ? "" : r.score.toFixed(3), r.created_at.slice(0, 19), r.message.slice(0, 80)]))
      : h("p", { class: "muted" }, "No quality report yet."));
    const newest = found[0];
    if (newest && newest.status === "SUCCEEDED") score.textContent = `Score ${newest.score.toFixed(3)} (report ${newest.id})`;
    else if (newest && newest.status === "FAILED") score.textContent = `Quality check ${newest.id} failed: ${newest.message}`;
    else if (newest) score.textContent = `Quality check ${newest.id}: ${newest.status}…`;
    stopPolling();
    if (newest && !["SUCCEEDED", "FAILED"].includes(newest.status)) stopPolling = view.every(2000, refreshReports);
  }
  let stopPolling = () => {};
  const profileBox = h("div", { id: "profile" }, h("p", { class: "muted" }, "Computing the profile…"));
  if (!view.show(
    h("section", {}, h("h2", {}, `Dataset ${version.dataset_id} · version ${version.version} · ${version.file_name}`),
      h("p", { class: "muted" }, `${version.num_rows} rows · ${version.format} · sha256 ${version.sha256.slice(0, 12)}`,
        version.parent_id ? ` · made by pipeline run ${version.pipeline.run_id} from version id ${version.parent_id}` : ""),
      h("a", { href: "#/datasets" }, "All datasets")),
    h("section", {}, h("h2", {}, "Profile"), profileBox),
    h("section", {}, h("h2", {}, "Quality"), run, score, reports))) return;
  await refreshReports();
  const profile = await api("GET", `/dataset/version/${id}/profile`);
  const number = (v) => (typeof v === "number" ? Number(v.toPrecision(6)) : "");
  profileBox.replaceChildren(profile.column_profiles ? table(
    ["Column", "Type", "Missing", "Unique", "Min", "Max", "Mean", "Std", "Top values"],
    profile.column_profiles.map((c) => [c.name, c.dtype, c.missing, `${c.unique ?? ""}${c.approximate ? " (approx.)" : ""}`,
      number(c.min), number(c.max), number(c.mean), number(c.std),
      (c.top_values || []).slice(0, 5).map((t) => `${t.value} (${t.count})`).join(", ")]))
    : table(["Class", "Images"], Object.entries(profile.classes || {})));
}

// The job list refreshes while any job is still going; the form below it is built once, so typing is never lost.
async function jobsView(view) {
  const [jobPage, datasets] = await Promise.all([listed("/training/job"), listed("/dataset", 500).then((p) => p.items)]);
  const jobs = jobPage.items;
  const versions = datasets.flatMap((d) => d.versions.map((v) => ({ ...v, label: `${d.name} v${v.version}` })));
  const target = h("select", { name: "target_column" });
  const version = h("select", { name: "dataset_version_id", onchange: () => fillTargets() }, versions.map((v) => h("option", { value: v.id }, v.label)));
  function fillTargets() {
    const chosen = versions.find((v) => String(v.id) === version.value);
    target.replaceChildren(...(chosen ? chosen.columns : []).map((c) => h("option", {}, c.name)));
    if (chosen) target.value = chosen.columns[chosen.columns.length - 1].name;
  }
  fillTargets();
  const number = (name, value, step) => h("label", {}, name.replace("_", " "), h("input", { name, type: "number", value, step, min: step === "any" ? "0" : "1" }));
  const form = h("form", { onsubmit: act(async () => {
    const job = await api("POST", "/training/job", {
      dataset_version_id: Number(version.value), target_column: target.value, epochs: Number(form.epochs.value),
      batch_size: Number(form.batch_size.value), learning_rate: Number(form.learning_rate.value), num_workers: Number(form.num_workers.value),
    });
    location.hash = `#/jobs/${job.id}`;
  }) },
  h("label", {}, "Dataset", version), h("label", {}, "Target column", target),
  number("epochs", 20, "1"), number("batch_size", 32, "1"), number("learning_rate", 0.001, "any"), number("num_workers", 2, "1"),
  h("button", { type: "submit" }, "Train"));
  const list = h("div", { id: "job-list" });
  const going = (rows) => rows.some((j) => !FINISHED.includes(j.status));
  function fillList(rows) {
    list.replaceChildren(table(["Id", "Name", "Status", "Epochs", "Created", "Message"], rows.map((j) => [
      h("a", { href: `#/jobs/${j.id}` }, j.id), j.name, statusBadge(j.status), j.config.epochs ?? "", j.created_at.slice(0, 19), j.message.slice(0, 80)])));
  }
  fillList(jobs);
  if (!view.show(
    h("section", {}, h("h2", {}, "Training jobs"), list, totalNote(jobPage, "jobs")),
    h("section", {}, h("h2", {}, "New training job"), versions.length ? form : h("p", { class: "muted" }, "Upload a dataset first.")))) return;
  let stillGoing = going(jobs);
  view.every(3000, async () => {
    if (!stillGoing) return;
    const fresh = (await listed("/training/job")).items;
    if (view.live()) { fillList(fresh); stillGoing = going(fresh); }
  });
}

async function jobView(view, id) {
  const canvas = h("canvas", { id: "metrics-chart" }), stepsCanvas = h("canvas", { id: "steps-chart" });
  const head = h("div", {}), logs = h("pre", { class: "logs", id: "logs" }), progress = h("progress", { max: 1, value: 0 });
  if (!view.show(h("section", {}, head, progress, canvas),
    h("section", {}, h("h2", {}, "Training loss by step"), stepsCanvas),
    h("section", {}, h("h2", {}, "Logs"), logs))) return;
  async function refresh() {
    const job = await api("GET", `/training/job/${id}`);
    if (!view.live()) return true;
    const last = job.metrics[job.metrics.length - 1] || {};
    progress.max = job.config.epochs || 1; progress.value = job.metrics.length;
    const stop = h("button", { class: "plain", onclick: act(async () => { await api("POST", `/training/job/${id}/stop`); await refresh(); }) }, "Stop");
    const finished = FINISHED.includes(job.status);
    head.replaceChildren(
      h("h2", {}, `Job ${job.id} · ${job.name} `, statusBadge(job.status)),
      h("p", { class: "muted" }, `${job.metrics.length}/${job.config.epochs} epochs`,
        last.val_accuracy !== undefined ? ` · val accuracy ${last.val_accuracy.toFixed(3)} · loss ${last.loss.toFixed(3)}` : "",
        job.message ? ` · ${job.message}` : ""),
      finished ? (job.model_version_id ? h("a", { href: "#/models" }, `Model version ${job.model_version_id} registered`) : "") : stop);
    drawChart(canvas, job.metrics, ["loss", "val_loss", "val_accuracy"]);
    if (job.config.log_every_n_steps === 0) stepsCanvas.replaceWith(h("p", { class: "muted" }, "Step logging is off for this job."));
    const steps = job.config.log_every_n_steps === 0 ? null : await api("GET", `/training/job/${id}/steps?max_points=500`).catch(() => null);
    if (steps && view.live()) drawChart(stepsCanvas, steps.points, ["loss"], "step");
    const text = await api("GET", `/training/job/${id}/logs`).catch(() => logs.textContent);
    logs.textContent = (text || "(no logs yet)").replace(/\x1b\[[0-9;]*m/g, "");  // drop terminal colours
    logs.scrollTop = logs.scrollHeight;
    return finished;
  }
  await follow(view, refresh);
}

// Tuning runs, then one run: every trial's metric per epoch on one chart (where a scheduler stopped trials early,
// or PBT handed a trial another's weights), and the trials with their state, config and best value.
async function tuningView(view, id) {
  if (id) return tuneView(view, id);
  const runs = (await listed("/training/tune")).items;
  const rows = runs.map((r) => [h("a", { href: `#/tuning/${r.id}` }, r.id), r.name, statusBadge(r.status), r.search.scheduler,
    `${r.search.metric} (${r.search.mode})`, `${r.trials.length}/${r.search.num_samples}`, r.created_at.slice(0, 19), r.message.slice(0, 80)]);
  view.show(h("section", {}, h("h2", {}, "Tuning runs"), rows.length
    ? table(["Id", "Name", "Status", "Scheduler", "Metric", "Trials", "Created", "Message"], rows)
    : h("p", { class: "muted" }, "No tuning run yet: start one with `aiplatform tune create` or POST /api/v1/training/tune.")));
}

function trialsByEpoch(trials, metric) {
  const byEpoch = new Map();
  for (const t of trials) {
    for (const point of t.history) {
      const epoch = point.training_iteration ?? point.epoch;
      if (typeof point[metric] !== "number" || epoch === undefined) continue;
      if (!byEpoch.has(epoch)) byEpoch.set(epoch, { step: epoch });
      byEpoch.get(epoch)[`trial ${t.id}`] = point[metric];
    }
  }
  return [...byEpoch.values()].sort((a, b) => a.step - b.step);
}

async function tuneView(view, id) {
  const canvas = h("canvas", { id: "trials-chart" });
  const head = h("div", {}), trials = h("div", { id: "trials" });
  if (!view.show(h("section", {}, head, canvas), h("section", {}, h("h2", {}, "Trials"), trials))) return;
  async function refresh() {
    const run = await api("GET", `/training/tune/${id}`);
    if (!view.live()) return true;
    const { metric, mode, scheduler, num_samples: samples } = run.search;
    const finished = FINISHED.includes(run.status);
    const stop = h("button", { class: "plain", onclick: act(async () => { await api("POST", `/training/tune/${id}/stop`); await refresh(); }) }, "Stop");
    head.replaceChildren(
      h("h2", {}, `Tuning run ${run.id} · ${run.name} `, statusBadge(run.status)),
      h("p", { class: "muted" }, `${scheduler} · ${metric} (${mode}) · ${run.trials.length}/${samples} trials`,
        run.best_trial_id ? ` · best trial ${run.best_trial_id}` : "", run.message ? ` · ${run.message}` : ""),
      finished ? (run.model_version_id ? h("a", { href: "#/models" }, `Model version ${run.model_version_id} registered`) : "") : stop);
    trials.replaceChildren(table(["Trial", "Status", "Config", "Epochs", `Best ${metric}`, "Message"], run.trials.map((t) => [
      t.id === run.best_trial_id ? `${t.id} (best)` : t.id, statusBadge(t.status),
      Object.entries(t.config).map(([k, v]) => `${k}=${short(v)}`).join(", "), t.iterations,
      t.best_value === null ? "" : short(t.best_value), t.message.slice(0, 160)])));
    drawChart(canvas, trialsByEpoch(run.trials, metric), run.trials.map((t) => `trial ${t.id}`));
    return finished;
  }
  await follow(view, refresh);
}

async function modelsView(view) {
  const models = (await listed("/model", 500)).items;
  const rows = models.flatMap((m) => m.versions.map((v) => [m.name, `v${v.version}`, v.stage,
    v.metrics.val_accuracy !== undefined ? v.metrics.val_accuracy.toFixed(3) : "", `job ${v.training_job_id}`,
    h("button", { onclick: act(async () => { await api("POST", `/model/${v.id}/deploy`, { num_replicas: 1 }); location.hash = "#/deployments"; }) }, "Deploy")]));
  view.show(h("section", {}, h("h2", {}, "Models"), table(["Model", "Version", "Stage", "Val accuracy", "Lineage", ""], rows)));
}

async function deploymentsView(view) {
  const deployments = (await listed("/deployment", 500)).items;
  const output = h("pre", { class: "logs", id: "prediction" });
  const rows = deployments.map((d) => {
    const input = h("textarea", { rows: 2, cols: 50, placeholder: '[{"column": 1.0, ...}]' });
    const predict = h("button", { onclick: act(async () => {
      const result = await api("POST", `/deployment/${d.id}/predict`, { rows: JSON.parse(input.value || "[]") });
      output.textContent = JSON.stringify(result, null, 2);
    }) }, "Predict");
    const remove = h("button", { class: "plain", onclick: act(async () => { await api("DELETE", `/deployment/${d.id}`); route(); }) }, "Delete");
    return [d.id, `model version ${d.model_version_id}`, statusBadge(d.status), h("span", {}, input, predict), remove];
  });
  view.show(h("section", {}, h("h2", {}, "Deployments"), table(["Id", "Serves", "Status", "Predict", ""], rows), output));
}

const views = { datasets: datasetsView, jobs: jobsView, tuning: tuningView, models: modelsView, deployments: deploymentsView };

async function route() {
  const view = openView();
  if (!session.access) return loginView();
  document.getElementById("nav").hidden = false;
  const [, page = "jobs", id] = location.hash.split("/");
  try {
    const me = await api("GET", "/account");
    document.getElementById("who").replaceChildren(me.username, " ", h("button", { class: "plain", onclick: act(async () => {
      await api("POST", "/auth/logout").catch(() => null); session.clear(); route();
    }) }, "Log out"));
    if (!view.live()) return;
    await (page === "jobs" && id ? jobView(view, id) : (views[page] || jobsView)(view, id));
  } catch (e) { showError(e.message); }
}

window.addEventListener("hashchange", route);
route();
