// What every suite is given.
export interface SuiteContext {
  modelPath: string;
  quick: boolean;
  rounds: number;
  /** The command line that ran the suite, for the report. */
  command: string;
  /** Progress lines (stderr), so a long run shows where it is. */
  log: (line: string) => void;
}
