// What a benchmark report says about where it ran: numbers from different machines (or from one
// machine under different load) are not comparable, so every table carries this.
import { readFileSync } from "node:fs";
import os from "node:os";

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  ramGiB: number;
  loadAverage: [number, number, number];
  date: string;
}

export function machineInfo(): MachineInfo {
  return {
    cpus: os.availableParallelism(),
    cpuModel: cpuModel(),
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100) as [number, number, number],
    date: new Date().toISOString(),
  };
}

function cpuModel(): string {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8").split("\n").find((l) => l.startsWith("model name"));
    if (line) return line.split(":")[1].trim();
  } catch {
    // Not Linux: os.cpus() still names the CPU.
  }
  return os.cpus()[0]?.model ?? "unknown";
}

export function describeMachine(m: MachineInfo): string {
  return `${m.cpus} CPUs (nproc), ${m.cpuModel}, ${m.ramGiB} GiB RAM`;
}

/** A markdown table; numbers are printed as given (format them before). */
export function markdownTable(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

export function fixed(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? "n/a" : n.toFixed(digits);
}

export function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || !(b > 0) ? "n/a" : `${(a / b).toFixed(2)}x`;
}
