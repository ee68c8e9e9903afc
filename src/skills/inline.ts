import { AppError, errorMessage } from "../shared/errors.ts";
import { runDrift, runDriftReport } from "./builtins/drift.ts";
import { runProbe } from "./builtins/probe.ts";
import { callRemoteSkill } from "./remote.ts";
import type { Skill } from "./schema.ts";

// Skills that act without a GitOps repository run inline in the control plane: the read-only
// probe, an Argo CD sync, and remote (http) skills. The rest go to runners as tasks.

export type InlineDeps = {
  argocd?: { baseUrl: string; token: string; timeoutMs: number; allowedServers?: string[] };
  secrets: (name: string) => string | undefined;
  fetch?: typeof fetch;
};

export type InlineOutcome =
  /** The fix (or check) is done: watch the alert resolve. */
  | { kind: "applied"; summary: string; details: Record<string, unknown> }
  /** Nothing more Pitcrew can do by itself: a human should look. */
  | { kind: "escalate"; summary: string; details: Record<string, unknown> }
  /** A remote skill answered with a plan for another skill. */
  | { kind: "delegate"; skill: string; params: Record<string, unknown>; summary: string };

export function isInline(skill: Skill): boolean {
  const a = skill.action;
  return ("builtin" in a && (a.builtin === "probe" || a.builtin === "drift")) || "http" in a;
}

/** Why an inline skill cannot run with this configuration (it would only fail), or null. */
export function inlineUnavailable(skill: Skill, deps: Pick<InlineDeps, "argocd">): string | null {
  const a = skill.action;
  if ("builtin" in a && a.builtin === "drift" && !deps.argocd)
    return "Argo CD is not configured (ARGOCD_URL and ARGOCD_TOKEN)";
  return null;
}

export async function runInline(
  skill: Skill,
  params: Record<string, unknown>,
  incident: Record<string, unknown>,
  deps: InlineDeps,
): Promise<InlineOutcome> {
  const a = skill.action;
  if ("builtin" in a && a.builtin === "probe") {
    const r = await runProbe(params);
    // A green probe means the target answers: the alert should clear by itself. A red one is
    // evidence for a human, not something a read-only skill can fix.
    return r.ok
      ? { kind: "applied", summary: r.summary, details: r.details }
      : { kind: "escalate", summary: `probe failed: ${r.summary}`, details: r.details };
  }
  if ("builtin" in a && a.builtin === "drift") {
    if (!deps.argocd)
      throw new AppError("invalid", "argocd.not_configured", "the drift skill needs ARGOCD_URL and ARGOCD_TOKEN");
    if (params.mode === "report") {
      // Read-only: drifted applications are evidence for a person, never changed here.
      const report = await runDriftReport(params, { ...deps.argocd, fetch: deps.fetch });
      const details = { total: report.total, drifted: report.drifted };
      return report.drifted.length
        ? { kind: "escalate", summary: report.summary, details }
        : { kind: "applied", summary: report.summary, details };
    }
    const r = await runDrift(params, { ...deps.argocd, fetch: deps.fetch });
    if (r.outcome === "pr_needed")
      return {
        kind: "escalate",
        summary: `${r.summary}; codifying the live change needs a pull request`,
        details: r.details,
      };
    return { kind: "applied", summary: r.summary, details: r.details };
  }
  if ("http" in a) {
    const answer = await callRemoteSkill(
      a.http,
      { incident, skill: skill.name, params },
      { secrets: deps.secrets, fetch: deps.fetch },
    );
    if (answer.type === "plan")
      return {
        kind: "delegate",
        skill: answer.skill,
        params: answer.params,
        summary: answer.rationale ?? `remote skill proposed ${answer.skill}`,
      };
    return answer.ok
      ? { kind: "applied", summary: answer.summary, details: answer.details ?? {} }
      : {
          kind: "escalate",
          summary: `remote skill reported failure: ${answer.summary}`,
          details: answer.details ?? {},
        };
  }
  throw new Error(`skill ${skill.name} does not run inline`);
}

export function inlineError(err: unknown): string {
  return errorMessage(err).slice(0, 1000);
}
