// Human-readable output in the `ollama` CLI's formats (sizes in decimal units, relative times,
// space-padded columns), so scripts and eyes used to Ollama read vllama the same way.

const UNITS: Array<[number, string]> = [
  [1e12, "TB"],
  [1e9, "GB"],
  [1e6, "MB"],
  [1e3, "KB"],
];

/** 1_900_000_000 -> "1.9 GB"; 12.3 GB -> "12 GB"; under 1 KB -> "512 B". */
export function humanBytes(bytes: number): string {
  for (const [size, unit] of UNITS) {
    if (bytes < size) continue;
    const value = bytes / size;
    if (value >= 10) return `${Math.trunc(value)} ${unit}`;
    return Number.isInteger(value) ? `${value} ${unit}` : `${value.toFixed(1)} ${unit}`;
  }
  return `${bytes} B`;
}

const HOUR_MS = 3_600_000;

/** docker/go-units' HumanDuration, which Ollama uses: "About a minute", "3 days", "2 weeks". */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / HOUR_MS);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / HOUR_MS / 24 / 365)} years`;
}

/** "2 days ago", "4 minutes from now"; far-future times (keep-alive forever) read "Forever". */
export function humanTime(iso: string, now = Date.now(), zeroValue = "Never"): string {
  const time = Date.parse(iso);
  if (Number.isNaN(time) || time <= 0) return zeroValue;
  const delta = now - time;
  if (delta < -20 * 365 * 24 * HOUR_MS) return "Forever";
  return delta < 0 ? `${humanDuration(-delta)} from now` : `${humanDuration(delta)} ago`;
}

/** Where a loaded model's weights live, from its total and VRAM sizes (ollama ps' PROCESSOR). */
export function processorLabel(size: number, sizeVram: number): string {
  if (sizeVram === 0) return "100% CPU";
  if (sizeVram === size) return "100% GPU";
  if (sizeVram > size || size === 0) return "Unknown";
  const cpuPercent = Math.round(((size - sizeVram) / size) * 100);
  return `${cpuPercent}%/${100 - cpuPercent}% CPU/GPU`;
}

/** Left-aligned columns, at least 4 spaces apart, as Ollama's tab writer prints them. */
export function table(rows: string[][]): string {
  const numColumns = Math.max(0, ...rows.map((row) => row.length));
  const widths = Array.from({ length: numColumns }, (_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length)));
  const lines = rows.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]! + 4)))
      .join("")
      .trimEnd(),
  );
  return lines.map((line) => `${line}\n`).join("");
}

/** The 12-hex-digit short ID Ollama shows for a digest ("sha256:" prefix or not). */
export function shortId(digest: string): string {
  return digest.replace(/^sha256[:-]/, "").slice(0, 12);
}
