// The RPC workers a model's layers are spread over (`serve --rpc host:port,...`, issue 15): their
// endpoints as ggml's RPC backend takes them, checked before anything connects.
import { isIP } from "node:net";

/** llama.cpp's `--rpc` separator; each worker is `host:port` (IPv4 or a name: the backend connects over IPv4). */
export function parseRpcWorkers(value: string | string[]): string[] {
  const items = (typeof value === "string" ? value.split(",") : value).map((s) => s.trim()).filter((s) => s !== "");
  for (const item of items) {
    const problem = endpointProblem(item);
    if (problem) throw new Error(`invalid RPC worker '${item}': ${problem}`);
  }
  const repeated = items.find((item, i) => items.indexOf(item) !== i);
  if (repeated) throw new Error(`RPC worker '${repeated}' is listed twice`);
  return items;
}

function endpointProblem(endpoint: string): string | undefined {
  const match = /^([^:\s]+):(\d+)$/.exec(endpoint);
  if (!match) return isIP(endpoint) === 6 || endpoint.startsWith("[") ? "IPv6 is not supported by ggml RPC; use IPv4 or a host name" : "expected host:port";
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return `port ${match[2]} is outside 1-65535`;
  return undefined;
}
