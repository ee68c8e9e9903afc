import type { TaskMessage } from "../../src/bus/jobs.ts";

export type ExecContext = {
  /** Aborted on cancel (reason "cancelled") or shutdown (reason "shutdown"). */
  signal: AbortSignal;
  attempt: number;
  progress(message: string, percent?: number): Promise<void>;
  log(stream: "stdout" | "stderr" | "runner", line: string): Promise<void>;
  /** Reports a pull request the task opened (or found open for its branch). */
  prOpened?(pr: { url: string; branch: string; number: number }): Promise<void>;
  /**
   * Throws (the abort reason, "cancelled") when the task was cancelled, even by a notice this runner
   * never heard; call it right before an irreversible step such as opening a pull request.
   */
  assertNotCancelled?(): Promise<void>;
};

/** Runs one task kind; returns the result, or throws (AppError.retryable decides nak vs fail). */
export type Executor = (task: TaskMessage, ctx: ExecContext) => Promise<unknown>;
