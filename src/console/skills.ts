import type { FastifyInstance } from "fastify";
import { actionKind, type Skill } from "../skills/schema.ts";
import { approvalFor } from "../skills/policy.ts";
import { isInline } from "../skills/inline.ts";
import { html, type Html } from "./html.ts";
import { stateBadge, when } from "./format.ts";
import { liveRegion, topics } from "./live.ts";
import { sendFragment, sendPage } from "./respond.ts";
import type { ConsoleContext } from "./routes.ts";

// Skills: each loaded skill (the list_skills / get_skill view: match, risk, the approval the policy
// requires, how it acts) with its last runs — the latest incidents whose plan chose it, in their
// current state. The list refreshes when skills are published, and every 30 s for the runs.

const RUNS_PER_SKILL = 3;
const PLANS_SCANNED = 500;

type Run = { incidentId: string; at: number; state: string; title: string };

export function skillsPages(app: FastifyInstance, ctx: ConsoleContext): void {
  const db = () => ctx.deps.store.db;

  /** The latest incidents planned with each skill (from the `incident.planned` events). */
  async function lastRuns(): Promise<Map<string, Run[]>> {
    const planned = await db()
      .selectFrom("events")
      .select(["incident_id", "data", "occurred_at"])
      .where("type", "=", "incident.planned")
      .orderBy("seq", "desc")
      .limit(PLANS_SCANNED)
      .execute();
    const bySkill = new Map<string, { incidentId: string; at: number }[]>();
    const seen = new Set<string>();
    for (const e of planned) {
      if (!e.incident_id) continue;
      let skill: unknown;
      try {
        skill = (JSON.parse(e.data) as { skill?: unknown }).skill;
      } catch {
        continue;
      }
      if (typeof skill !== "string" || seen.has(`${skill}|${e.incident_id}`)) continue;
      seen.add(`${skill}|${e.incident_id}`);
      const list = bySkill.get(skill) ?? [];
      if (list.length < RUNS_PER_SKILL) list.push({ incidentId: e.incident_id, at: Number(e.occurred_at) });
      bySkill.set(skill, list);
    }
    const ids = [...new Set([...bySkill.values()].flat().map((r) => r.incidentId))];
    const incidents = ids.length
      ? await db().selectFrom("incidents").select(["id", "state", "title"]).where("id", "in", ids).execute()
      : [];
    const byId = new Map(incidents.map((i) => [i.id, i]));
    const out = new Map<string, Run[]>();
    for (const [skill, list] of bySkill) {
      out.set(
        skill,
        list.flatMap((r) => {
          const i = byId.get(r.incidentId);
          return i ? [{ ...r, state: i.state, title: i.title }] : [];
        }),
      );
    }
    return out;
  }

  function runsOf(runs: Run[] | undefined): Html {
    if (!runs?.length) return html`<span class="muted">none yet</span>`;
    const item = (r: Run) =>
      html`<li><a href="/incidents/${r.incidentId}" title="${r.title}"><code>${r.incidentId}</code></a> ${stateBadge(r.state)} ${when(r.at)}</li>`;
    return html`<ul class="plain">${runs.map(item)}</ul>`;
  }

  function list(skills: Skill[], runs: Map<string, Run[]>): Html {
    const max = ctx.deps.config.guardrails.autoApproveMaxRisk;
    if (skills.length === 0) return html`<p class="muted">No skills are loaded.</p>`;
    return html`${[...skills]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((s) => {
        const a = approvalFor(s, max);
        const labels = Object.entries(s.match.labels);
        return html`<article class="card skill" id="skill-${s.name}">
<h2>${s.name}</h2>
<p>${s.description}</p>
<dl class="facts">
<dt>Matches</dt><dd>${
          s.match.alertname.length
            ? s.match.alertname.map((n, i) => html`${i ? ", " : ""}<code>${n}</code>`)
            : html`<span class="muted">any alert name</span>`
        }${
          labels.length
            ? html`<br>labels ${labels.map(([k, v], i) => html`${i ? ", " : ""}<code>${k}=~${v}</code>`)}`
            : null
        }${s.match.priority ? html`<br>priority ${s.match.priority}` : null}</dd>
<dt>Risk</dt><dd><span class="risk risk-${s.risk}">${s.risk}</span></dd>
<dt>Approval</dt><dd>${
          a.required
            ? html`${a.when} <span class="muted">(${a.why})</span>`
            : html`none needed <span class="muted">(${s.approval === "none" ? "the skill asks for none" : `risk within AUTO_APPROVE_MAX_RISK=${max}`})</span>`
        }</dd>
<dt>Acts by</dt><dd>${actionKind(s.action)}${isInline(s) ? " (inline, in the control plane)" : " (a runner task)"}</dd>
<dt>Last runs</dt><dd>${runsOf(runs.get(s.name))}</dd>
</dl>
</article>`;
      })}`;
  }

  app.get("/skills", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    const skills = ctx.deps.skills();
    const body = html`<h1>Skills</h1>
<p class="muted">${skills.length} skill(s) loaded.
Policy: approval is needed above <code>AUTO_APPROVE_MAX_RISK=${ctx.deps.config.guardrails.autoApproveMaxRisk}</code>.</p>
${liveRegion({ src: "/skills/list", on: [topics.system], every: 30 }, list(skills, await lastRuns()))}`;
    return sendPage(reply, { title: "Skills", current: "skills", principal: p, body, live: true });
  });

  app.get("/skills/list", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    return sendFragment(reply, list(ctx.deps.skills(), await lastRuns()));
  });
}
