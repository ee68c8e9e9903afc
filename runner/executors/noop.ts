import { z } from "zod";
import { AppError, invalid } from "../../src/shared/errors.ts";
import type { Executor } from "./types.ts";

// A task kind that does nothing but behave like work: it takes time, reports progress, honours
// cancellation and can fail on purpose. Tests and `pitcrew demo` use it to exercise the queue.

const NoopPayload = z.object({
  sleepMs: z.number().int().min(0).max(600_000).default(0),
  steps: z.number().int().min(1).max(100).default(1),
  /** Fail the first `failTimes` attempts (retryable), or always ("fatal"). */
  fail: z.enum(["retryable", "fatal"]).optional(),
  failTimes: z.number().int().min(0).max(100).default(Number.MAX_SAFE_INTEGER),
  result: z.unknown().optional(),
});

export const noopExecutor: Executor = async (task, ctx) => {
  const parsed = NoopPayload.safeParse(task.payload);
  if (!parsed.success)
    throw invalid(
      "noop.invalid_payload",
      parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    );
  const p = parsed.data;
  for (let i = 1; i <= p.steps; i++) {
    await sleep(p.sleepMs / p.steps, ctx.signal);
    await ctx.progress(`step ${i}/${p.steps}`, Math.round((i / p.steps) * 100));
  }
  if (p.fail === "fatal") throw new AppError("invalid", "noop.failed", "noop task asked to fail", { retryable: false });
  if (p.fail === "retryable" && ctx.attempt <= p.failTimes) {
    throw new AppError("unavailable", "noop.failed", `noop task asked to fail attempt ${ctx.attempt}`, {
      retryable: true,
    });
  }
  return p.result ?? { ok: true, attempt: ctx.attempt };
};

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
