// Draining on shutdown, as vLLM and Kubernetes expect: readiness fails first and new requests are
// refused (503, Connection: close), running ones finish until the deadline, and the rest are
// ended then through their own error path (a final NDJSON line, an SSE error event and [DONE]).
import type { RequestHandler, Response } from "express";
import { ShuttingDownError } from "../api/errors.js";
import { notes } from "./context.js";

/** Requests a shutdown never ends early: the probes, so an orchestrator sees the state. */
const PROBE_PATHS = new Set(["/health", "/ready"]);
/** After the deadline, how long ended requests get to write their final line before sockets close. */
const FINAL_WRITE_MS = 1_000;

export class Lifecycle {
  private draining_ = false;
  private readonly inFlight = new Map<Response, AbortController>();
  private readonly idleWaiters: Array<() => void> = [];

  get draining(): boolean {
    return this.draining_;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Counts each request until its response closes; refuses new ones once draining. */
  tracker(): RequestHandler {
    return (req, res, next) => {
      if (PROBE_PATHS.has(req.path)) return next();
      if (this.draining_) {
        res.setHeader("Connection", "close");
        return next(new ShuttingDownError());
      }
      const shutdown = new AbortController();
      this.inFlight.set(res, shutdown);
      notes(res).shutdown = shutdown.signal;
      res.once("close", () => {
        this.inFlight.delete(res);
        if (this.inFlight.size === 0) this.idleWaiters.splice(0).forEach((wake) => wake());
      });
      next();
    };
  }

  /**
   * Stops taking requests and waits up to `timeoutMs` for running ones (Infinity: no deadline);
   * then ends the rest (their engine calls are cancelled) and gives them FINAL_WRITE_MS to say so.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining_ = true;
    if (await this.idleWithin(timeoutMs)) return;
    for (const shutdown of this.inFlight.values()) shutdown.abort(new ShuttingDownError("server is shutting down: request ended at the shutdown deadline"));
    await this.idleWithin(FINAL_WRITE_MS);
  }

  private idleWithin(ms: number): Promise<boolean> {
    if (this.inFlight.size === 0) return Promise.resolve(true);
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(() => resolve(false), ms) : undefined;
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
