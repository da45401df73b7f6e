// Go's time.ParseDuration grammar ("300ms", "-1.5h", "1h30m", "0"), in which Ollama's clients
// send keep_alive and OLLAMA_KEEP_ALIVE is written.

const GO_DURATION = /^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$/;
const DURATION_UNIT_MS: Record<string, number> = {
  ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000,
};

/** Milliseconds of a Go duration, or of a bare number of seconds; undefined if neither. */
export function goDurationMs(text: string): number | undefined {
  if (text === "0" || text === "+0" || text === "-0") return 0;
  // A bare number is seconds, as OLLAMA_KEEP_ALIVE reads it.
  if (/^[-+]?\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  if (!GO_DURATION.test(text)) return undefined;
  const sign = text.startsWith("-") ? -1 : 1;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g)) {
    ms += Number(amount) * DURATION_UNIT_MS[unit!]!;
  }
  return sign * ms;
}
