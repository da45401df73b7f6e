// A strict parser of Prometheus' text exposition format (0.0.4), as a scraper reads it: every
// sample must belong to a family declared by `# TYPE` before it, label values are unescaped,
// series are unique, and histograms are checked (cumulative buckets, `+Inf` equals `_count`).
// The tests read `/metrics` through it instead of matching strings, so a metric's type and
// labels are checked the way the Gateway API Inference Extension's endpoint picker reads them.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
const SUFFIXES: Record<Family["type"], string[]> = {
  counter: [""], gauge: [""], untyped: [""], histogram: ["_bucket", "_sum", "_count"], summary: ["", "_sum", "_count"],
};

function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  const n = Number(text);
  if (text === "" || Number.isNaN(n)) throw new Error(`bad value in: ${line}`);
  return n;
}

/** Parses `{a="x",b="y"}` starting at `text[start] === "{"`; returns the labels and the index after `}`. */
function parseLabels(text: string, start: number, line: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = start + 1;
  while (text[i] !== "}") {
    const eq = text.indexOf("=", i);
    const name = text.slice(i, eq).trim();
    if (eq < 0 || !LABEL_NAME.test(name) || text[eq + 1] !== '"') throw new Error(`bad label in: ${line}`);
    if (name in labels) throw new Error(`label ${name} twice in: ${line}`);
    let value = "";
    for (i = eq + 2; text[i] !== '"'; i++) {
      if (i >= text.length) throw new Error(`unterminated label value in: ${line}`);
      if (text[i] === "\\") {
        const escaped = text[++i];
        if (escaped === "n") value += "\n";
        else if (escaped === "\\" || escaped === '"') value += escaped;
        else throw new Error(`bad escape in: ${line}`);
      } else {
        value += text[i];
      }
    }
    labels[name] = value;
    i++;
    if (text[i] === ",") i++;
    else if (text[i] !== "}") throw new Error(`expected , or } in: ${line}`);
  }
  return [labels, i + 1];
}

function familyOf(families: Map<string, Family>, sampleName: string): Family | undefined {
  for (const family of families.values()) {
    if (SUFFIXES[family.type].some((suffix) => family.name + suffix === sampleName)) return family;
  }
  return undefined;
}

function checkHistogram(family: Family): void {
  const series = new Map<string, Sample[]>();
  for (const s of family.samples.filter((s) => s.name.endsWith("_bucket"))) {
    if (!("le" in s.labels)) throw new Error(`${family.name}: bucket without le`);
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(rest);
    series.set(key, [...(series.get(key) ?? []), s]);
  }
  for (const [key, buckets] of series) {
    const bounds = buckets.map((b) => parseValue(b.labels.le, b.labels.le));
    for (let i = 1; i < buckets.length; i++) {
      if (!(bounds[i] > bounds[i - 1]) || buckets[i].value < buckets[i - 1].value) throw new Error(`${family.name}${key}: buckets not cumulative`);
    }
    const count = family.samples.find((s) => s.name === `${family.name}_count` && JSON.stringify(s.labels) === key);
    if (bounds.at(-1) !== Infinity || count?.value !== buckets.at(-1)!.value) throw new Error(`${family.name}${key}: +Inf bucket differs from _count`);
  }
}

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("#")) {
      const [, keyword, name, ...rest] = line.split(" ");
      if (keyword !== "HELP" && keyword !== "TYPE") continue;
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
      const family = families.get(name) ?? { name, type: "untyped" as const, samples: [] };
      if (keyword === "HELP") family.help = rest.join(" ");
      else {
        if (families.has(name) && (family.samples.length > 0 || family.type !== "untyped")) throw new Error(`TYPE late or twice: ${line}`);
        if (!TYPES.has(rest[0]) || rest.length !== 1) throw new Error(`bad type in: ${line}`);
        family.type = rest[0] as Family["type"];
      }
      families.set(name, family);
      continue;
    }
    const nameEnd = line.search(/[{ ]/);
    const name = line.slice(0, nameEnd);
    if (nameEnd < 0 || !METRIC_NAME.test(name)) throw new Error(`bad sample: ${line}`);
    const [labels, after] = line[nameEnd] === "{" ? parseLabels(line, nameEnd, line) : [{}, nameEnd];
    const [value, timestamp, extra] = line.slice(after).trim().split(/ +/);
    if (extra !== undefined || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) throw new Error(`bad sample: ${line}`);
    const family = familyOf(families, name);
    if (!family) throw new Error(`sample before its # TYPE: ${line}`);
    const series = `${name}${JSON.stringify(labels)}`;
    if (seen.has(series)) throw new Error(`series twice: ${line}`);
    seen.add(series);
    family.samples.push({ name, labels, value: parseValue(value, line) });
  }
  for (const family of families.values()) if (family.type === "histogram") checkHistogram(family);
  return families;
}
