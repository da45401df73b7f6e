// The dashboard: each loaded model's work, from GET /v1/metrics once a second.
import { getJson } from "/web/api.js";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function ms(seconds, count) {
  return count === 0 ? "–" : `${Math.round(seconds * 1000)}`;
}

function rate(n) {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function node(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** One figure: a label over a value (with an optional unit); `metric` names it for tests and tools. */
function figure(label, value, unit, metric) {
  const box = node("div", "figure");
  const v = node("div", "value", value);
  v.dataset.metric = metric;
  if (unit) v.append(" ", node("small", "", unit));
  box.append(node("div", "label", label), v);
  return box;
}

/** The last minute's tokens/s as an area chart, oldest on the left; the second still running is left out. */
function chart(perSecond) {
  const series = perSecond.slice(0, -1);
  const max = Math.max(1, ...series);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${series.length - 1} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "generated tokens per second over the last minute");
  const points = series.map((v, i) => `${i},${100 - (v / max) * 96}`).join(" ");
  const area = document.createElementNS(SVG, "polygon");
  area.setAttribute("class", "area");
  area.setAttribute("points", `0,100 ${points} ${series.length - 1},100`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points);
  svg.append(area, line);
  const wrap = node("div", "chart-wrap");
  const label = node("div", "chart-label");
  label.append(node("span", "", "tokens/s, last 60 s"), node("span", "", `max ${max}`));
  wrap.append(svg, label);
  return wrap;
}

function modelCard(m) {
  const card = node("article", "model-card");
  card.dataset.model = m.name;
  card.append(node("h2", "", m.name));
  const { requests: r, tokens: t, latency: l, cache: c } = m;
  const figures = node("div", "figures");
  figures.append(
    figure("Running", String(r.running), "", "running"),
    figure("Waiting", String(r.waiting), "", "waiting"),
    figure("Generated", rate(t.generation_per_second), "tokens/s", "tokens-per-second"),
    figure("Prompt", rate(t.prompt_per_second), "tokens/s", "prompt-tokens-per-second"),
    figure("TTFT p50 / p95", `${ms(l.ttft_seconds.p50, l.ttft_seconds.count)} / ${ms(l.ttft_seconds.p95, l.ttft_seconds.count)}`, "ms", "ttft"),
    figure("ITL p50 / p95", `${ms(l.inter_token_seconds.p50, l.inter_token_seconds.count)} / ${ms(l.inter_token_seconds.p95, l.inter_token_seconds.count)}`, "ms", "itl"),
    figure("Prefix-cache hits", `${Math.round(c.prefix_cache_hit_rate * 100)}%`, "", "prefix-hit-rate"),
    figure("Preemptions", String(c.preemptions), "", "preemptions"),
    figure("Requests", rate(r.per_second), "/s", "requests-per-second"),
    figure("Finished", String(Object.values(r.finished).reduce((a, b) => a + b, 0)), "", "finished"),
    figure("Weights", bytes(m.memory.model_bytes), "", "model-bytes"),
  );
  const kvLabel = node("div", "figure");
  const kvValue = node("div", "label", `KV cache: ${c.kv_cells_used} of ${c.kv_cells_total} cells (${c.kv_cells_idle} idle in the prefix cache)`);
  kvValue.dataset.metric = "kv";
  kvLabel.append(kvValue);
  const bar = node("div", "bar");
  const fill = node("div");
  fill.style.width = `${c.kv_cells_total > 0 ? (100 * c.kv_cells_used) / c.kv_cells_total : 0}%`;
  bar.append(fill);
  card.append(figures, kvLabel, bar, chart(t.generation_per_second_series));
  return card;
}

function render(snapshot) {
  const { memory } = snapshot;
  $("process").textContent = `Server memory: ${bytes(memory.rss_bytes)} resident (peak ${bytes(memory.peak_rss_bytes)}), ${bytes(memory.external_bytes)} of model weights and buffers outside the JS heap`;
  const cards = snapshot.models.map(modelCard);
  $("models").replaceChildren(...(cards.length > 0 ? cards : [node("p", "no-models", "No model is loaded. A model loads on its first request.")]));
  $("updated").textContent = `updated ${new Date(snapshot.time).toLocaleTimeString()}`;
}

async function poll() {
  try {
    render(await getJson("/v1/metrics"));
    $("error").hidden = true;
  } catch (err) {
    $("error").textContent = `Could not read /v1/metrics: ${err.message}`;
    $("error").hidden = false;
  }
  setTimeout(poll, POLL_MS);
}

void poll();
