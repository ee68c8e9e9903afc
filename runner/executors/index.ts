import { noopExecutor } from "./noop.ts";
import type { Executor } from "./types.ts";

export const executors: Record<string, Executor> = {
  noop: noopExecutor,
};
