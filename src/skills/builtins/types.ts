import type { z } from "zod";
import { AppError, invalid } from "../../shared/errors.ts";

/** What a builtin changed in the working copy; the caller commits it and opens the PR. */
export type RepoChange = { files: string[]; summary: string; details: Record<string, unknown> };

/** A builtin that edits a GitOps working copy (never a live cluster). */
export type RepoBuiltin = (
  workdir: string,
  params: Record<string, unknown>,
  ctx: { now: () => number },
) => Promise<RepoChange>;

/** Validates a builtin's parameters; a failure names the builtin and every bad field. */
export function parseParams<S extends z.ZodType>(builtin: string, schema: S, params: unknown): z.infer<S> {
  const r = schema.safeParse(params);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "params"}: ${i.message}`);
  throw invalid(`builtin.${builtin}.bad_params`, `${builtin}: ${issues.join("; ")}`, { issues });
}

export const noChange = (message: string) => new AppError("conflict", "gitops.no_change", message);
