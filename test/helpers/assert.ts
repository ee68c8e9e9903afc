import { Writable } from "node:stream";
import { expect } from "vitest";
import { AppError } from "../../src/shared/errors.ts";
import { createLogger } from "../../src/shared/logger.ts";

/** The AppError a promise rejects with (fails the test when it resolves or throws something else). */
export async function rejection(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

/** A real pino logger whose lines are kept, to assert what was (and was not) logged. */
export function captureLogger(level = "debug") {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger({ level, destination }), lines };
}
