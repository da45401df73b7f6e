// A streaming HTTP client for the benchmarks: POSTs JSON and reads NDJSON (vllama/Ollama) or
// SSE (llama-server) line by line, noting when the first chunk arrives. node:http with no
// socket limit, so N requests really are N concurrent connections, and one connection per
// request: llama-server closes a connection after a streamed response, and a reused one hangs up.
import http from "node:http";

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

export interface StreamTiming {
  /** Request sent to first data chunk, ms. */
  ttftMs: number;
  /** Every parsed JSON chunk, in order. */
  chunks: unknown[];
  /** When each chunk arrived, ms after the request was sent. */
  arrivalsMs: number[];
}

/** POSTs `body`; each line of the response (SSE `data: ` prefix stripped) is one JSON chunk. */
export function postStreaming(url: string, body: unknown): Promise<StreamTiming> {
  const started = performance.now();
  let ttftMs = NaN;
  const chunks: unknown[] = [];
  const arrivalsMs: number[] = [];
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
      if (res.statusCode !== 200) {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => reject(new Error(`${url}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`)));
        return;
      }
      let pending = "";
      const takeLine = (line: string) => {
        // An SSE comment (":" ...) is a keep-alive: llama-server sends one while a long prompt is processed.
        if (line.startsWith(":")) return;
        const data = line.startsWith("data: ") ? line.slice(6) : line;
        if (data.trim() === "" || data.trim() === "[DONE]") return;
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
        chunks.push(JSON.parse(data));
        arrivalsMs.push(performance.now() - started);
      };
      res.setEncoding("utf8");
      // A line that is not JSON rejects the request; thrown from a stream handler it would end the
      // bench process before it stops its peers (a llama-server left running).
      const failed = (error: unknown) => {
        req.destroy();
        reject(error);
      };
      res.on("data", (d: string) => {
        pending += d;
        let nl;
        try {
          while ((nl = pending.indexOf("\n")) >= 0) {
            takeLine(pending.slice(0, nl));
            pending = pending.slice(nl + 1);
          }
        } catch (error) {
          failed(error);
        }
      });
      res.on("end", () => {
        try {
          takeLine(pending);
          resolve({ ttftMs, chunks, arrivalsMs });
        } catch (error) {
          failed(error);
        }
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

export async function getJson(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
  });
}

/** Polls `url` until it answers 200 (a server loading its model answers 503 or refuses). */
export async function waitHealthy(url: string, timeoutMs: number, isAlive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error(`server exited before ${url} answered`);
    const ok = await getJson(url).then((r) => r.status === 200, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not become healthy in ${timeoutMs} ms`);
}
