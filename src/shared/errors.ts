export type ErrorKind =
  | "invalid"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "too_large"
  | "unavailable";

/**
 * The one error type that crosses boundaries. `code` is a stable machine code (`domain.reason`),
 * `message` is safe to show a caller (never a secret, never a stack), `retryable` tells a queue
 * consumer whether to nak or term.
 */
export class AppError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly retryable: boolean;
  readonly details?: Record<string, unknown>;

  constructor(
    kind: ErrorKind,
    code: string,
    message: string,
    opts: { retryable?: boolean; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = "AppError";
    this.kind = kind;
    this.code = code;
    this.retryable = opts.retryable ?? kind === "unavailable";
    this.details = opts.details;
  }
}

export const invalid = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError("invalid", code, message, { details });
export const notFound = (code: string, message: string) => new AppError("not_found", code, message);
export const conflict = (code: string, message: string) => new AppError("conflict", code, message);
export const unavailable = (code: string, message: string, cause?: unknown) =>
  new AppError("unavailable", code, message, { cause, retryable: true });

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** Rejects with an `unavailable` error when `p` has not settled within `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unavailable(`${what}.timeout`, `${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
