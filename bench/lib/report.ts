// A suite's report: markdown with the command, the machine, the numbers, and the goals.
import { describeMachine, machineInfo, type MachineInfo } from "./machine.js";

export interface Goal {
  name: string;
  target: string;
  /** The measured value, formatted. */
  measured: string;
  met: boolean | undefined;
}

export interface SuiteReport {
  suite: string;
  title: string;
  command: string;
  /** The backend and its devices, e.g. "cuda (NVIDIA H100 80GB HBM3)". */
  backend?: string;
  machineBefore: MachineInfo;
  machineAfter: MachineInfo;
  /** Commands of the peers, as run. */
  peers: string[];
  tables: string[];
  goals: Goal[];
  notes: string[];
}

export function startReport(suite: string, title: string, command: string): SuiteReport {
  return { suite, title, command, machineBefore: machineInfo(), machineAfter: machineInfo(), peers: [], tables: [], goals: [], notes: [] };
}

export function renderReport(r: SuiteReport): string {
  const load = (m: MachineInfo) => m.loadAverage.join(", ");
  const goal = (g: Goal) => `- ${g.met === undefined ? "n/a" : g.met ? "MET" : "MISSED"}: ${g.name}: ${g.measured} (goal ${g.target})`;
  return [
    `## ${r.title}`,
    "",
    `- command: \`${r.command}\``,
    `- machine: ${describeMachine(r.machineBefore)}`,
    ...(r.backend ? [`- backend: ${r.backend}`] : []),
    `- date: ${r.machineBefore.date}`,
    `- load average (1, 5, 15 min): before ${load(r.machineBefore)}; after ${load(r.machineAfter)}`,
    ...r.peers.map((p) => `- peer: \`${p}\``),
    "",
    ...r.tables.flatMap((t) => [t, ""]),
    ...(r.goals.length ? ["Goals:", "", ...r.goals.map(goal), ""] : []),
    ...(r.notes.length ? ["Notes:", "", ...r.notes.map((n) => `- ${n}`), ""] : []),
  ].join("\n");
}
