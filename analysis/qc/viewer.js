// QC viewer of one subject: draws the JSON in #qc-data (analysis/qc/data.py) with plain SVG
// and canvas, so the page needs no library, no server and no network.
"use strict";

const QC = { errors: [], day: 0, roi: null };
window.addEventListener("error", (e) => QC.errors.push(String(e.message || e)));

const COLORS = {
  "P+": "#ff4d4d", "P-": "#4da6ff", soma: "#f2f2f2", dendrite: "#ffd23f", pair: "#3fffa0",
  hit: "rgba(44,160,44,0.13)", failure: "rgba(148,103,189,0.16)", timeout: "rgba(0,0,0,0.04)",
};
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

// A quantized series (data.quantize): bytes 0..254 over [lo, hi], 255 = NaN.
function decode(enc) {
  const bytes = atob(enc.q);
  const out = new Float32Array(bytes.length);
  const scale = (enc.hi - enc.lo) / 254;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes.charCodeAt(i);
    out[i] = c === 255 ? NaN : enc.lo + c * scale;
  }
  return out;
}

// One plot on a canvas. series: {enc, color, label}, x in frames (point i at i * enc.step);
// bands: [start, stop, color]; marks: {frames, color} drawn as triangles on top.
function plot(canvas, { nFrames, fsHz, series, bands = [], marks = [], title = "", ylabel = "" }) {
  const ctx = canvas.getContext("2d");
  const w = (canvas.width = canvas.clientWidth || 900);
  const h = (canvas.height = canvas.clientHeight || 140);
  const m = { l: 52, r: 10, t: 16, b: 18 };
  ctx.clearRect(0, 0, w, h);
  const decoded = series.map((s) => ({ ...s, y: decode(s.enc) }));
  let lo = Infinity, hi = -Infinity;
  for (const s of decoded) for (const v of s.y) if (v === v) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!(hi > lo)) { lo = (lo === Infinity ? 0 : lo) - 1; hi = lo + 2; }
  const X = (f) => m.l + (f / Math.max(nFrames, 1)) * (w - m.l - m.r);
  const Y = (v) => h - m.b - ((v - lo) / (hi - lo)) * (h - m.t - m.b);
  for (const [a, b, color] of bands) { ctx.fillStyle = color; ctx.fillRect(X(a), m.t, X(b) - X(a), h - m.t - m.b); }
  for (const s of decoded) {
    ctx.strokeStyle = s.color; ctx.lineWidth = 1; ctx.beginPath();
    let pen = false;
    s.y.forEach((v, i) => {
      if (v !== v) { pen = false; return; }
      pen ? ctx.lineTo(X(i * s.enc.step), Y(v)) : ctx.moveTo(X(i * s.enc.step), Y(v));
      pen = true;
    });
    ctx.stroke();
  }
  for (const mark of marks) {
    ctx.fillStyle = mark.color;
    for (const f of mark.frames) {
      const x = X(f);
      ctx.beginPath(); ctx.moveTo(x - 3, m.t); ctx.lineTo(x + 3, m.t); ctx.lineTo(x, m.t + 6); ctx.fill();
    }
  }
  ctx.strokeStyle = "#999"; ctx.strokeRect(m.l, m.t, w - m.l - m.r, h - m.t - m.b);
  ctx.fillStyle = "#222"; ctx.font = "11px sans-serif";
  ctx.fillText(hi.toPrecision(3), 4, m.t + 8); ctx.fillText(lo.toPrecision(3), 4, h - m.b);
  ctx.fillText(ylabel, 4, h / 2);
  ctx.fillText(title + "   " + decoded.map((s) => s.label).filter(Boolean).join(" / "), m.l + 4, 11);
  ctx.fillText(`${(nFrames / fsHz).toFixed(0)} s`, w - m.r - 40, h - 4);
  ctx.fillText("0", m.l, h - 4);
  QC.plots = (QC.plots || 0) + 1;
}

// Trial x lag raster (rows: trials) and its mean below, on one canvas.
function raster(canvas, view, roi, title) {
  const ctx = canvas.getContext("2d");
  const w = (canvas.width = canvas.clientWidth || 300);
  const h = (canvas.height = canvas.clientHeight || 200);
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#222"; ctx.font = "11px sans-serif"; ctx.fillText(title, 4, 11);
  const enc = view && view.rois[String(roi)];
  if (!enc) { ctx.fillText("no trials", 4, 30); return; }
  const values = decode(enc);
  const nLag = view.lag_s.length, nTrial = view.n_trials;
  const top = 16, rasterH = Math.round((h - top) * 0.6), meanTop = top + rasterH + 6;
  const cw = (w - 8) / nLag, ch = rasterH / nTrial;
  const mean = new Float32Array(nLag), count = new Float32Array(nLag);
  for (let t = 0; t < nTrial; t++) for (let k = 0; k < nLag; k++) {
    const v = values[t * nLag + k];
    if (v !== v) continue;
    const g = Math.round(255 * (1 - (v - enc.lo) / Math.max(enc.hi - enc.lo, 1e-9)));
    ctx.fillStyle = `rgb(${g},${g},${g})`;
    ctx.fillRect(4 + k * cw, top + t * ch, Math.ceil(cw), Math.ceil(ch));
    mean[k] += v; count[k] += 1;
  }
  const zero = view.lag_s.findIndex((s) => s >= 0);
  ctx.strokeStyle = "#d62728"; ctx.beginPath();
  ctx.moveTo(4 + zero * cw, top); ctx.lineTo(4 + zero * cw, h); ctx.stroke();
  const m = Array.from(mean, (s, k) => (count[k] ? s / count[k] : NaN));
  const finite = m.filter((v) => v === v);
  const lo = Math.min(...finite), hi = Math.max(...finite);
  ctx.strokeStyle = "#000"; ctx.beginPath();
  m.forEach((v, k) => {
    const y = meanTop + (h - meanTop - 4) * (1 - (v - lo) / Math.max(hi - lo, 1e-9));
    k ? ctx.lineTo(4 + (k + 0.5) * cw, y) : ctx.moveTo(4 + 0.5 * cw, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#222";
  ctx.fillText(`${nTrial} trials, ${view.lag_s[0]} to ${view.lag_s[nLag - 1]} s; mean below`, 4, h - 2);
}

function targetOf(session, roi) {
  return session.targets.find((t) => t.roi === roi);
}

function partners(data, role, roi) {
  return role === "soma"
    ? data.pairs.filter((p) => p[0] === roi).map((p) => ({ role: "dendrite", roi: p[1], corr: p[2] }))
    : data.pairs.filter((p) => p[1] === roi).map((p) => ({ role: "soma", roi: p[0], corr: p[2] }));
}

function roiColor(session, role, roi) {
  if (role === "dendrite") return COLORS.dendrite;
  const target = targetOf(session, roi);
  return target ? COLORS[target.group] : COLORS.soma;
}

function buildPanel(data, dayIndex, role, parent) {
  const session = data.sessions[dayIndex];
  const view = session.planes[role];
  const [rows, cols] = view.shape;
  const box = document.createElement("figure");
  box.className = "panel"; box.dataset.day = dayIndex;
  const svg = svgEl("svg", { viewBox: `-0.5 -0.5 ${cols} ${rows}`, class: "fov" }, box);
  for (const [kind, uri] of Object.entries(view.images)) {
    svgEl("image", { href: uri, x: -0.5, y: -0.5, width: cols, height: rows,
      preserveAspectRatio: "none", class: `img img-${kind}` }, svg);
  }
  const centroids = (r) => Object.fromEntries(session.planes[r].rois.map((x) => [x.id, x.c]));
  const soma = centroids("soma"), dend = centroids("dendrite");
  const pairs = svgEl("g", { class: "layer layer-pairs" }, svg);
  for (const [s, d] of data.pairs) {
    if (!soma[s] || !dend[d]) continue;
    svgEl("line", { x1: soma[s][1], y1: soma[s][0], x2: dend[d][1], y2: dend[d][0], class: "pair" }, pairs);
  }
  const layer = svgEl("g", { class: `layer layer-${role}` }, svg);
  for (const roi of view.rois) {
    const path = svgEl("path", { d: roi.d, class: `outline ${role}`, "data-roi": roi.id,
      stroke: roiColor(session, role, roi.id) }, layer);
    const target = role === "soma" && targetOf(session, roi.id);
    svgEl("title", {}, path).textContent =
      `${role} ROI ${roi.id}` + (target ? ` = target ${target.id} (${target.group})` : "");
    path.addEventListener("click", () => select(data, dayIndex, role, roi.id));
    path.addEventListener("mouseenter", () => { document.getElementById("hover").textContent = path.textContent; });
  }
  const targets = svgEl("g", { class: "layer layer-targets" }, svg);
  for (const t of session.targets) {
    if (t.plane !== data.roles[role]) continue;
    svgEl("path", { d: t.d, class: "outline target", stroke: COLORS[t.group] }, targets);
    svgEl("text", { x: t.label[1], y: t.label[0] - 0.8, fill: COLORS[t.group], class: "label" }, targets)
      .textContent = t.id;
  }
  const caption = document.createElement("figcaption");
  caption.textContent = `${session.name} · ${role} plane ${view.plane} · ${view.rois.length} ROIs`;
  box.appendChild(caption);
  parent.appendChild(box);
}

function traceRow(parent, data, session, role, roi, label) {
  const view = session.planes[role];
  const canvas = document.createElement("canvas");
  canvas.className = "trace";
  parent.appendChild(canvas);
  const bands = session.trials.filter((t) => t[2] !== "timeout").map((t) => [t[0], t[1], COLORS[t[2]]]);
  const series = [{ enc: view.dff[String(roi)], color: role === "soma" ? "#222" : "#b8860b", label: "dF/F" }];
  const marks = [{ frames: (view.events[String(roi)] || []).map((e) => e[0]), color: "#d62728" }];
  if (!series[0].enc) return;
  plot(canvas, { nFrames: session.n_frames, fsHz: session.fs_hz, series, bands, marks, title: label, ylabel: "dF/F" });
  const spikes = document.createElement("canvas");
  spikes.className = "spikes";
  parent.appendChild(spikes);
  plot(spikes, { nFrames: session.n_frames, fsHz: session.fs_hz,
    series: [{ enc: view.spikes[String(roi)], color: "#555", label: "OASIS spikes (binned sum)" }] });
}

function select(data, dayIndex, role, roi) {
  QC.roi = { day: dayIndex, role, roi };
  const session = data.sessions[dayIndex];
  document.querySelectorAll("path.selected").forEach((p) => p.classList.remove("selected"));
  document.querySelectorAll(`.panel[data-day="${dayIndex}"] path.${role}[data-roi="${roi}"]`)
    .forEach((p) => p.classList.add("selected"));
  const target = role === "soma" && targetOf(session, roi);
  document.getElementById("roi-title").textContent =
    `${session.name}: ${role} ROI ${roi}` + (target ? `, target ${target.id} (${target.group})` : "");
  const traces = document.getElementById("roi-traces");
  traces.replaceChildren();
  traceRow(traces, data, session, role, roi, `${role} ${roi}; ▼ events; bands: hit / failure trials`);
  for (const p of partners(data, role, roi)) {
    traceRow(traces, data, session, p.role, p.roi, `paired ${p.role} ${p.roi} (corr ${p.corr})`);
  }
  const aligned = document.getElementById("roi-aligned");
  aligned.replaceChildren();
  const somaRoi = role === "soma" ? roi : (partners(data, role, roi)[0] || {}).roi;
  for (const event of ["reward", "failure"]) {
    const canvas = document.createElement("canvas");
    canvas.className = "raster";
    aligned.appendChild(canvas);
    raster(canvas, session.aligned[event], somaRoi, `soma ${somaRoi ?? "-"} around ${event}`);
  }
}

function showDay(data, dayIndex) {
  QC.day = dayIndex;
  document.querySelectorAll("#days button").forEach((b, i) => b.classList.toggle("on", i === dayIndex));
  document.querySelectorAll(".panel").forEach((p) => { p.hidden = Number(p.dataset.day) !== dayIndex; });
  const session = data.sessions[dayIndex];
  const replay = session.replay;
  plot(document.getElementById("replay-plot"), { nFrames: session.n_frames, fsHz: session.fs_hz,
    title: `${session.name}: corr ${replay.corr}`, ylabel: "readout",
    series: [{ enc: replay.logged, color: "#222", label: "logged" }, { enc: replay.replayed, color: "#ff7f0e", label: "replayed" }] });
  for (const role of ["soma", "dendrite"]) {
    const reg = session.planes[role].registration;
    const bands = reg.bad_frames.map(([a, b]) => [a, b, "rgba(214,39,40,0.35)"]);
    plot(document.getElementById(`shift-${role}`), { nFrames: session.n_frames, fsHz: session.fs_hz, bands,
      title: `${role} plane: shifts (px); red: bad frames`, ylabel: "px",
      series: [{ enc: reg.shift_row, color: "#1f77b4", label: "row" }, { enc: reg.shift_col, color: "#ff7f0e", label: "col" }] });
    plot(document.getElementById(`corr-${role}`), { nFrames: session.n_frames, fsHz: session.fs_hz, bands,
      title: `${role} plane: correlation to reference`, ylabel: "corr",
      series: [{ enc: reg.corr_ref, color: "#2ca02c", label: "" }] });
    const o = session.overlays[role];
    document.getElementById(`overlay-${role}`).src = o.image;
    document.getElementById(`overlay-${role}-text`).textContent =
      `${role}: ${session.name} (green) on ${o.reference} (magenta); shift ${o.shift_row}, ${o.shift_col} px, ` +
      `rotation ${o.rotation_deg}°, corr ${o.corr}` + (o.aligned_ok ? "" : " — NOT aligned");
  }
  drawBehaviour(data);
  const first = session.targets.find((t) => t.roi !== null) || { roi: (session.planes.soma.rois[0] || {}).id };
  if (first.roi !== undefined) select(data, dayIndex, "soma", first.roi);
}

function drawBehaviour(data) {
  const rows = data.behaviour;
  for (const metric of ["hit_rate", "rewards_per_min"]) {
    const canvas = document.getElementById(`behaviour-${metric}`);
    const ctx = canvas.getContext("2d");
    const w = (canvas.width = canvas.clientWidth || 400), h = (canvas.height = canvas.clientHeight || 160);
    ctx.clearRect(0, 0, w, h);
    const ys = rows.map((r) => r[metric] ?? NaN);
    const hi = Math.max(1e-9, ...ys.filter((v) => v === v));
    const X = (i) => 40 + (i + 0.5) * ((w - 50) / Math.max(rows.length, 1));
    const Y = (v) => h - 20 - (v / hi) * (h - 40);
    ctx.strokeStyle = "#999"; ctx.strokeRect(40, 20, w - 50, h - 40);
    ctx.strokeStyle = "#222"; ctx.beginPath();
    ys.forEach((v, i) => (i ? ctx.lineTo(X(i), Y(v)) : ctx.moveTo(X(i), Y(v))));
    ctx.stroke();
    ys.forEach((v, i) => {
      ctx.fillStyle = i === QC.day ? "#d62728" : "#222";
      ctx.beginPath(); ctx.arc(X(i), Y(v), i === QC.day ? 5 : 3, 0, 7); ctx.fill();
    });
    ctx.fillStyle = "#222"; ctx.font = "11px sans-serif";
    ctx.fillText(metric.replace(/_/g, " "), 44, 14); ctx.fillText(hi.toPrecision(3), 2, 26); ctx.fillText("0", 28, h - 20);
    rows.forEach((r, i) => ctx.fillText(r.session, X(i) - 14, h - 6));
  }
}

function selfTest(data) {
  // Exercise every day and both roles once, then go back to the first day.
  data.sessions.forEach((s, i) => {
    showDay(data, i);
    for (const role of ["soma", "dendrite"]) if (s.planes[role].rois.length) select(data, i, role, s.planes[role].rois[0].id);
  });
  showDay(data, 0);
  const count = (selector) => document.querySelectorAll(selector).length;
  return { outlines: { soma: count("path.outline.soma"), dendrite: count("path.outline.dendrite"),
    target: count("path.outline.target") }, plots: QC.plots };
}

function main() {
  const data = JSON.parse(document.getElementById("qc-data").textContent);
  const days = document.getElementById("days");
  const panels = document.getElementById("fov-panels");
  data.sessions.forEach((s, i) => {
    const b = document.createElement("button");
    b.textContent = s.name;
    b.addEventListener("click", () => showDay(data, i));
    days.appendChild(b);
    for (const role of ["soma", "dendrite"]) buildPanel(data, i, role, panels);
  });
  const setImage = () => { document.body.dataset.image = document.getElementById("image-kind").value; };
  document.getElementById("image-kind").addEventListener("change", setImage);
  setImage();
  document.querySelectorAll("input[data-layer]").forEach((box) => {
    box.addEventListener("change", () => document.body.classList.toggle(`hide-${box.dataset.layer}`, !box.checked));
  });
  return selfTest(data);
}

document.addEventListener("DOMContentLoaded", () => {
  let result = {};
  try { result = main(); } catch (err) { QC.errors.push(String(err && err.stack || err)); }
  document.getElementById("qc-selftest").textContent = JSON.stringify({ errors: QC.errors, ...result });
});
