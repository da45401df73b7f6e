// Loaded models: reference-counted by the requests using them, unloaded after their keep-alive,
// least recently used first when too many are loaded. An entry is a model file loaded with
// given load settings; the same file with other settings is another entry. Loading the same
// entry twice at once loads it once. num_ctx is a load setting only upwards, as Ollama reloads on
// a changed num_ctx but without its flip-flop: an entry serves every request whose num_ctx its
// context holds, a larger one loads the model again with a cache sized for it, and the entry it
// supersedes goes as soon as its requests are done.
import type { KvEventPublisher } from "../kv-events/publisher.js";
import type { LoadSettings } from "./options.js";
import { ModelRunner, type RunnerOptions } from "./model-runner.js";

/** The engine's part of a runner's options; each entry adds its load settings. */
export type EngineRunnerOptions = Omit<RunnerOptions, keyof LoadSettings>;

/** A model as the pool loads it: its file, and its projector's when it takes images. */
export interface PoolModel {
  path: string;
  projectorPath?: string;
  name: string;
  digest: string;
  size: number;
}

interface PoolEntry {
  /** The model's path and load settings. */
  key: string;
  /** The model's path and load settings but the requested context: what entries that hold the same requests share. */
  loadKey: string;
  /** The num_ctx it was loaded for, if any (LoadSettings.contextRequested). */
  contextRequested?: number;
  path: string;
  name: string;
  digest: string;
  size: number;
  runner: Promise<ModelRunner>;
  /** Set once the load finished. */
  ready?: ModelRunner;
  refs: number;
  keepAliveMs: number;
  expiresAt: number;
  lastUsed: number;
  timer?: NodeJS.Timeout;
}

export interface LoadedModelView {
  name: string;
  digest: string;
  size: number;
  expiresAt: number;
  runner: ModelRunner;
}

export interface Lease {
  runner: ModelRunner;
  /** Nanoseconds this request spent waiting for the model to load (0 when already loaded). */
  loadNs: number;
  release(keepAliveMs: number): void;
}

export class ModelPool {
  private readonly entries = new Map<string, PoolEntry>();

  constructor(
    private readonly maxLoaded: number,
    private readonly runnerOptions: EngineRunnerOptions,
    /** Called once per finished load (the engine logs the KV cache it got). */
    private readonly onLoaded: (name: string, runner: ModelRunner) => void = () => {},
    /** Opened before the first load; each model publishes under its own topic. */
    private readonly kvEvents?: Promise<KvEventPublisher>,
  ) {}

  async acquire(
    model: PoolModel,
    settings: LoadSettings,
    keepAliveMs: number,
  ): Promise<Lease> {
    const started = process.hrtime.bigint();
    const entry = await this.entryFor(model, settings, keepAliveMs);
    clearTimeout(entry.timer);
    let runner: ModelRunner;
    try {
      runner = await entry.runner;
    } catch (error) {
      entry.refs--;
      throw error;
    }
    let released = false;
    return {
      runner,
      loadNs: Number(process.hrtime.bigint() - started),
      release: (ms: number) => {
        if (released) return;
        released = true;
        this.release(entry, ms);
      },
    };
  }

  /**
   * The entry a request uses, counted as in use before any await: one with the same settings
   * whose context holds the request's num_ctx (loaded ones first, then the largest context), else
   * a new load sized for it. A load under way whose context is not known yet may hold it: the
   * request waits for it and looks again.
   */
  private async entryFor(model: PoolModel, settings: LoadSettings, keepAliveMs: number): Promise<PoolEntry> {
    const { contextRequested, ...others } = settings;
    const loadKey = `${model.path}\n${model.projectorPath ?? ""}\n${JSON.stringify(others)}`;
    for (;;) {
      const same = [...this.entries.values()].filter((e) => e.loadKey === loadKey);
      const serving = same.filter((e) => contextRequested === undefined || contextRequested <= contextHeld(e)).sort(byPreference)[0];
      if (serving) {
        serving.refs++;
        return serving;
      }
      const loading = same.filter((e) => !e.ready);
      if (loading.length === 0) return this.startLoad(model, settings, loadKey, keepAliveMs);
      await Promise.allSettled(loading.map((e) => e.runner));
    }
  }

  /** Registers a new entry, used by one request, whose load starts now (concurrent requests share it). */
  private startLoad(model: PoolModel, settings: LoadSettings, loadKey: string, keepAliveMs: number): PoolEntry {
    const key = `${loadKey}\n${settings.contextRequested ?? ""}`;
    const loading: PoolEntry = {
      key, loadKey, contextRequested: settings.contextRequested, path: model.path, name: model.name, digest: model.digest, size: model.size,
      runner: this.makeRoom(key).then(() => this.load(model, settings)),
      refs: 1, keepAliveMs, expiresAt: Infinity, lastUsed: Date.now(),
    };
    this.entries.set(key, loading);
    loading.runner.then(
      (runner) => {
        loading.ready = runner;
        // A lost RPC worker took the model's state with it: the next request loads it again.
        runner.onWorkerLost(() => void this.drop(loading));
        this.onLoaded(model.name, runner);
        for (const e of this.entries.values()) if (e.refs === 0 && this.superseded(e)) void this.drop(e);
      },
      () => this.entries.get(key) === loading && this.entries.delete(key),
    );
    return loading;
  }

  /** Whether a loaded entry of the same settings holds a larger context: no request needs this one any more. */
  private superseded(entry: PoolEntry): boolean {
    return [...this.entries.values()].some((e) => e.ready && e.loadKey === entry.loadKey && contextHeld(e) > contextHeld(entry));
  }

  private async load(model: PoolModel, settings: LoadSettings): Promise<ModelRunner> {
    const kvEvents = (await this.kvEvents)?.forModel(model.name);
    return ModelRunner.load({ model: model.path, projector: model.projectorPath }, { ...this.runnerOptions, ...settings, kvEvents });
  }

  /** Models whose load has finished. */
  loaded(): LoadedModelView[] {
    return [...this.entries.values()].flatMap((e) =>
      e.ready ? [{ name: e.name, digest: e.digest, size: e.size, expiresAt: e.expiresAt, runner: e.ready }] : []);
  }

  /** Unloads a model now, each entry of it no request uses (keep_alive 0 with an empty prompt). */
  async unload(path: string): Promise<void> {
    const idle = [...this.entries.values()].filter((e) => e.path === path && e.refs === 0);
    await Promise.all(idle.map((e) => this.drop(e)));
  }

  async close(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => this.drop(e)));
    await (await this.kvEvents?.catch(() => undefined))?.close();
  }

  private release(entry: PoolEntry, keepAliveMs: number): void {
    entry.refs--;
    entry.lastUsed = Date.now();
    entry.keepAliveMs = keepAliveMs;
    if (entry.refs > 0) return;
    if (this.superseded(entry)) {
      void this.drop(entry);
      return;
    }
    entry.expiresAt = keepAliveMs === Infinity ? Infinity : Date.now() + keepAliveMs;
    if (keepAliveMs === Infinity) return;
    // setTimeout holds at most ~24.8 days; longer keep-alives are as good as forever.
    entry.timer = setTimeout(() => {
      if (entry.refs === 0) void this.drop(entry);
    }, Math.min(keepAliveMs, 2 ** 31 - 1));
    entry.timer.unref();
  }

  /** Unloads least recently used idle models until the one loading fits beside the others. */
  private async makeRoom(loadingKey: string): Promise<void> {
    for (;;) {
      const others = [...this.entries.values()].filter((e) => e.key !== loadingKey);
      if (others.length < this.maxLoaded) return;
      const idle = others.filter((e) => e.refs === 0).sort((a, b) => a.lastUsed - b.lastUsed);
      // Every loaded model is busy: load one more rather than fail the request.
      if (idle.length === 0) return;
      await this.drop(idle[0]);
    }
  }

  private async drop(entry: PoolEntry): Promise<void> {
    if (this.entries.get(entry.key) !== entry) return;
    this.entries.delete(entry.key);
    clearTimeout(entry.timer);
    try {
      await (await entry.runner).close();
    } catch {
      // a model that failed to load has nothing to close
    }
  }
}

/**
 * The largest num_ctx an entry serves: its context once loaded, and the one it was loaded for (all
 * memory allowed). A cache that memory already cut serves any: loading again for a larger num_ctx
 * would get no more cells (fewer, with this load still in memory), only a reload per request.
 */
function contextHeld(entry: PoolEntry): number {
  if (entry.ready?.kvSizing.sizedBy === "memory") return Infinity;
  return Math.max(entry.ready?.contextLength ?? 0, entry.contextRequested ?? 0);
}

/** Loaded entries before loading ones (no wait), then the largest context (the newest load: older ones drain). */
function byPreference(a: PoolEntry, b: PoolEntry): number {
  return Number(b.ready !== undefined) - Number(a.ready !== undefined) || contextHeld(b) - contextHeld(a);
}
