import { z } from "zod";
import { parseDuration } from "../shared/duration.ts";

const regex = z.string().refine((s) => {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}, "not a valid regular expression");

const duration = z.string().refine((s) => parseDuration(s) !== undefined, "expected a duration like 30s, 15m, 2h");

const params = z.record(z.string(), z.unknown()).default({});

export const Risk = z.enum(["read", "low", "medium", "high"]);
export type Risk = z.infer<typeof Risk>;
export const RISK_ORDER: Record<Risk, number> = { read: 0, low: 1, medium: 2, high: 3 };

export const PatchOp = z
  .object({
    file: z.string().min(1),
    path: z.string().min(1),
    set: z.unknown().optional(),
    multiply: z.number().positive().optional(),
    append: z.unknown().optional(),
    max: z.union([z.number(), z.string()]).optional(),
  })
  .refine(
    (op) => [op.set, op.multiply, op.append].filter((v) => v !== undefined).length === 1,
    "exactly one of set, multiply, append",
  );

export const Action = z.union([
  z.object({ builtin: z.enum(["rollback", "scale", "restart", "quota", "probe", "drift"]), with: params }).strict(),
  z.object({ patch: z.array(PatchOp).min(1), with: params }).strict(),
  z
    .object({
      http: z
        .object({
          url: z.url(),
          secret_env: z
            .string()
            .regex(/^[A-Z_][A-Z0-9_]*$/)
            .optional(),
          timeout: duration.default("10s"),
        })
        .strict(),
      with: params,
    })
    .strict(),
  z
    .object({
      agent: z
        .object({ prompt: z.string().min(1), command: z.string().optional(), timeout: duration.default("30m") })
        .strict(),
      with: params,
    })
    .strict(),
]);
export type Action = z.infer<typeof Action>;

export const Skill = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and dashes"),
    description: z.string().min(1).max(2000),
    match: z
      .object({
        alertname: z.array(z.string().min(1)).default([]),
        labels: z.record(z.string(), regex).default({}),
        priority: z.number().int().default(0),
      })
      .strict(),
    dedupe_key: z.string().optional(),
    risk: Risk,
    approval: z.enum(["none", "before_run", "before_merge"]).default("before_merge"),
    action: Action,
    verify: z
      .object({
        alert_resolves_within: duration.optional(),
        /**
         * What happens when the alert still fires after the window: `escalate` (to a person; the
         * default), or `revert` — escalate, and also open a pull request reverting Pitcrew's merged
         * change (approved like any other), so an unverified change is not left in place silently.
         */
        on_failure: z.enum(["escalate", "revert"]).optional(),
      })
      .strict()
      .default({}),
    /** When this skill reports failure (a red probe, a failed remote result), plan this skill next. */
    on_failure: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/)
      .optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    // Only a change merged through a pull request can be reverted.
    const inline =
      "http" in s.action || ("builtin" in s.action && (s.action.builtin === "probe" || s.action.builtin === "drift"));
    if (s.verify.on_failure === "revert" && inline) {
      ctx.addIssue({
        code: "custom",
        path: ["verify", "on_failure"],
        message:
          "revert needs a skill whose change is a pull request (a GitOps builtin, patch or agent), not an inline one",
      });
    }
  });
export type Skill = z.infer<typeof Skill>;

export function actionKind(a: Action): "builtin" | "patch" | "http" | "agent" {
  if ("builtin" in a) return "builtin";
  if ("patch" in a) return "patch";
  if ("http" in a) return "http";
  return "agent";
}
