// What every suite is given.
export type Backend = "cuda" | "cpu";

export interface SuiteContext {
  modelPath: string;
  /** Where vllama runs (and the llama.cpp peers with it: all layers offloaded on cuda). */
  backend: Backend;
  /** Concurrency levels (N) to measure instead of the suite's own. */
  parallels?: number[];
  /** Prompt lengths (W tokens) to measure instead of the suite's own (engine, http). */
  promptTokens?: number[];
  /** Systems to leave out by name (engine, http), e.g. node-llama-cpp where only llama-server matters. */
  skip?: string[];
  quick: boolean;
  rounds: number;
  /** The command line that ran the suite, for the report. */
  command: string;
  /** Progress lines (stderr), so a long run shows where it is. */
  log: (line: string) => void;
}
