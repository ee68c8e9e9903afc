import { quota } from "./quota.ts";
import { restart } from "./restart.ts";
import { rollback } from "./rollback.ts";
import { scale } from "./scale.ts";
import type { RepoBuiltin } from "./types.ts";

export type { RepoBuiltin, RepoChange } from "./types.ts";

/** The builtins that change the GitOps repository (probe and drift act elsewhere). */
export const repoBuiltins: Record<"rollback" | "scale" | "restart" | "quota", RepoBuiltin> = {
  rollback,
  scale,
  restart,
  quota,
};
