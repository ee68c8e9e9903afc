import type { FastifyInstance } from "fastify";
import type { Config } from "../config/load.ts";
import { systemStatus } from "../mcp/tools/system-status.ts";
import { hasScope } from "../mcp/tool.ts";
import { findProgram } from "../skills/agent-clis.ts";
import { setPause } from "../system/settings.ts";
import { requeueDetected } from "../incidents/queueing.ts";
import { html, type Html } from "./html.ts";
import { consoleActor, type ConsolePrincipal } from "./auth.ts";
import { when } from "./format.ts";
import { csrfField } from "./layout.ts";
import { liveRegion, topics } from "./live.ts";
import { sendFragment, sendPage } from "./respond.ts";
import type { ConsoleContext } from "./routes.ts";

// Status: the system_status view (version, mode, store, queue, pause switch, missing agent CLIs),
// dry-run, and the configuration that decides what Pitcrew does (GitOps repository, auto-approve
// risk, limits, agent CLIs). Admins get Pause / Resume, which do exactly what pause_automation /
// resume_automation and Telegram's /pause and /resume do (settings.setPause, then, on resume,
// analysis queued again for incidents that waited in detected), recorded as console:<person>.

type StatusData = Awaited<ReturnType<typeof systemStatus.handler>>["data"];

const ok = (good: boolean, detail: string) =>
  good ? html`<span class="state state-live">ok</span>` : html`<span class="state state-failed">down</span> ${detail}`;

function automation(s: StatusData, config: Config, p: ConsolePrincipal): Html {
  const paused = s.paused;
  const admin = hasScope(p, "admin");
  const state =
    paused === null
      ? html`<p>Pause state unknown (the database did not answer).</p>`
      : paused.paused
        ? html`<p id="automation-state"><span class="state state-paused">paused</span> by ${paused.by ?? "?"} ${when(paused.at === null ? null : Date.parse(paused.at))}${
            paused.reason ? html` — ${paused.reason}` : null
          }. Alerts are recorded; nothing is analysed or fixed.</p>`
        : html`<p id="automation-state"><span class="state state-live">running</span>${
            paused.by
              ? html` (last changed by ${paused.by} ${when(paused.at === null ? null : Date.parse(paused.at))})`
              : null
          }</p>`;
  const dry = config.guardrails.dryRun
    ? html`<p><span class="state state-paused">dry run</span> <code>DRY_RUN=true</code>: plans are made and reported, nothing is changed.</p>`
    : null;
  const control =
    admin && paused !== null
      ? html`<form method="post" action="${paused.paused ? "/status/resume" : "/status/pause"}" class="stack" id="pause-form">
${csrfField(p)}
<label for="pause-reason">Reason (recorded)</label>
<input id="pause-reason" name="reason" maxlength="1000" autocomplete="off">
<button type="submit" class="${paused.paused ? "" : "danger"}">${paused.paused ? "Resume automation" : "Pause automation"}</button>
</form>`
      : null;
  return html`${state}${dry}${control}`;
}

const lasting = (ms: number) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : `${Math.round(ms / 60_000)} min`);

function describeGitops(g: Config["gitops"]): Html {
  return g.provider === "local"
    ? html`local repository <code>${g.repoPath}</code>, branch <code>${g.baseBranch}</code>`
    : html`GitHub <code>${g.owner}/${g.repo}</code>, branch <code>${g.baseBranch}</code>${g.apiUrl ? html` at <code>${g.apiUrl}</code>` : null}`;
}

export function statusPages(app: FastifyInstance, ctx: ConsoleContext): void {
  const { deps } = ctx;
  const read = async (p: ConsolePrincipal) =>
    (
      await systemStatus.handler(
        {},
        { principal: { subject: p.subject, scopes: p.scopes, via: p.method === "token" ? "token" : "jwt" }, deps },
      )
    ).data;

  function agents(s: StatusData): Html {
    const embedded = s.mode === "embedded";
    const entries = Object.entries(deps.config.agents.commands).sort(([a], [b]) => a.localeCompare(b));
    const rows = entries.map(([name, cmd]) => {
      const program = cmd[0] ?? "";
      const found = embedded ? findProgram(program, ctx.agentPath ?? "") : undefined;
      const where = !embedded
        ? html`<span class="muted">checked by each runner at start</span>`
        : found
          ? html`<span class="state state-live">found</span> <code>${found}</code>`
          : html`<span class="state state-failed">not found</span>`;
      const dflt = name === deps.config.agents.defaultAgent ? html` <span class="muted">(default)</span>` : null;
      return html`<tr><td>${name}${dflt}</td><td><code>${program}</code></td><td>${where}</td></tr>`;
    });
    const missing = s.missing_agent_clis ?? [];
    return html`<div class="table-wrap"><table><caption class="visually-hidden">Agent CLIs</caption>
<thead><tr><th scope="col">Agent</th><th scope="col">Program</th><th scope="col">${embedded ? "On this control plane" : "Installed"}</th></tr></thead>
<tbody>${rows}</tbody></table></div>
${missing.length ? html`<ul class="warnings">${missing.map((m) => html`<li>${m.program ?? m.agent}, needed by ${m.skills.join(", ")}: ${m.hint}</li>`)}</ul>` : null}`;
  }

  app.get("/status", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    const s = await read(p);
    const c = deps.config;
    const g = c.guardrails;
    const body = html`<h1>Status</h1>
<section aria-labelledby="h-system"><h2 id="h-system">System</h2>
<dl class="facts">
<dt>Version</dt><dd>${s.version}</dd>
<dt>Mode</dt><dd>${s.mode}${s.mode === "embedded" ? " (in-process queue and runners)" : " (NATS JetStream, separate runners)"}</dd>
<dt>Store</dt><dd>${s.store.dialect} ${ok(s.store.ok, s.store.detail)}</dd>
<dt>Queue</dt><dd>${s.queue.kind} ${ok(s.queue.ok, s.queue.detail)}</dd>
</dl></section>
<section aria-labelledby="h-automation"><h2 id="h-automation">Automation</h2>
${liveRegion({ src: "/status/automation", on: [topics.system], id: "automation" }, automation(s, c, p))}
</section>
<section aria-labelledby="h-config"><h2 id="h-config">Configuration</h2>
<dl class="facts">
<dt>GitOps repository</dt><dd>${describeGitops(c.gitops)}</dd>
<dt>Auto-approve up to</dt><dd><code>AUTO_APPROVE_MAX_RISK=${g.autoApproveMaxRisk}</code> risk; above it a person approves</dd>
<dt>Pull requests</dt><dd>at most ${g.maxPrsPerHour} per hour, ${g.maxPrsPerDay} per day; ${g.maxFixesPerNamespace} concurrent fix(es) per namespace</dd>
<dt>Planner</dt><dd>${c.anthropic ? html`Claude (<code>${c.anthropic.model}</code>), rules as fallback` : "rules (no ANTHROPIC_API_KEY)"}</dd>
<dt>Approvals</dt><dd>console, MCP${c.telegram ? `, Telegram (${c.telegram.mode})` : ""}</dd>
<dt>Console sign-in</dt><dd>tokens${
      c.console.oidc ? html`, SSO through <code>${c.mcp.oidc?.issuer ?? ""}</code>` : null
    }; sessions last ${lasting(c.console.sessionTtlMs)}</dd>
<dt>Public URL</dt><dd><code>${c.publicUrl}</code></dd>
</dl>
<h3>Agent CLIs</h3>
${agents(s)}
</section>`;
    return sendPage(reply, { title: "Status", current: "status", principal: p, body, live: true });
  });

  app.get("/status/automation", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    return sendFragment(reply, automation(await read(p), deps.config, p));
  });

  const reasonOf = (body: unknown): string | undefined => {
    const r = (body as Record<string, unknown> | undefined)?.reason;
    return typeof r === "string" && r.trim() ? r.trim().slice(0, 1000) : undefined;
  };

  app.post("/status/pause", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "admin");
    if (!p) return reply;
    ctx.auth.checkCsrf(req, p);
    await setPause(deps.store, true, { ...consoleActor(p), reason: reasonOf(req.body) }, deps.now());
    return reply.redirect("/status", 303);
  });

  app.post("/status/resume", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "admin");
    if (!p) return reply;
    ctx.auth.checkCsrf(req, p);
    const now = deps.now();
    const by = consoleActor(p);
    await setPause(deps.store, false, { ...by, reason: reasonOf(req.body) }, now);
    if ((await requeueDetected(deps.store, now, by)) > 0) deps.kick();
    return reply.redirect("/status", 303);
  });
}
