// What the probes report: `/health` (alive) and `/ready` (send traffic here), with the backend,
// its devices' memory, the host's memory, the loaded models and the version.
//
// One model's full queue does not make the replica unready. A readiness probe takes the whole
// replica out of its Service's endpoints, for every model; the Gateway API Inference Extension's
// endpoint picker, which routes between replicas (../shared/reference/scale-out.md), reads each
// model's load from the metrics instead (`vllm:num_requests_waiting`, `vllm:num_requests_running`,
// `vllm:kv_cache_usage_perc`, per `model_name`), as vLLM, whose health stays 200 under any queue,
// expects. So `/ready` fails on a full queue only when every loaded model's queue is full (with
// one model, as a replica usually serves, when its queue is), and names the full ones meanwhile.
import { freemem, totalmem } from "node:os";
import type { EngineService } from "../api/engine-contract.js";
import type { PsResponse } from "../api/ollama.js";

export interface ServerStatus {
  version: string;
  backend: "cuda" | "cpu";
  /** Every ggml device: the CPU, and GPUs with their name and memory (bytes) when present. */
  devices: ReturnType<EngineService["backend"]>["devices"];
  host_memory: { total: number; free: number };
  /** Loaded models. */
  models: string[];
  /** Models in the store (0: nothing can be loaded). */
  available_models: number;
  /** Loaded models whose queue is full: their next request gets 503 busy. */
  full_queues: string[];
  /** Every loaded model's queue is full: this replica has no room for any request of them. */
  queue_full: boolean;
  /** `serve --rpc` workers, each with what it holds of every loaded model (bytes); absent without RPC. */
  rpc_workers?: RpcWorkerStatus[];
}

export interface RpcWorkerStatus {
  endpoint: string;
  models: Array<{ name: string; model_bytes: number; kv_bytes: number; compute_bytes: number }>;
}

function rpcWorkerStatus(workers: string[], loaded: PsResponse["models"]): RpcWorkerStatus[] {
  return workers.map((endpoint) => ({
    endpoint,
    models: loaded.flatMap((m) => m.rpc_workers?.filter((w) => w.endpoint === endpoint).map(({ endpoint: _, ...held }) => ({ name: m.name, ...held })) ?? []),
  }));
}

export async function serverStatus(engine: EngineService): Promise<ServerStatus> {
  const { backend, devices } = engine.backend();
  const [loaded, available] = await Promise.all([engine.ps(), engine.list()]);
  const fullQueues = engine.fullQueues();
  return {
    version: engine.version,
    backend,
    devices,
    host_memory: { total: totalmem(), free: freemem() },
    models: loaded.models.map((m) => m.name),
    available_models: available.models.length,
    full_queues: fullQueues,
    queue_full: fullQueues.length > 0 && fullQueues.length >= loaded.models.length,
    ...(engine.rpcWorkers().length > 0 && { rpc_workers: rpcWorkerStatus(engine.rpcWorkers(), loaded.models) }),
  };
}

/** Why this server should not get new requests now, if it should not. */
export function notReadyReason(status: ServerStatus, draining: boolean): string | undefined {
  if (draining) return "shutting down";
  if (status.available_models === 0) return "no model to load: the model store is empty";
  if (status.queue_full) return "the request queue is full";
  return undefined;
}
