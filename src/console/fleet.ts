import type { FastifyInstance } from "fastify";
import { listRunners } from "../fleet/repo.ts";
import { runnerView, type RunnerOut } from "../mcp/views.ts";
import { html, type Html } from "./html.ts";
import { ago, when } from "./format.ts";
import { liveRegion, topics } from "./live.ts";
import { sendFragment, sendPage } from "./respond.ts";
import type { ConsoleContext } from "./routes.ts";

// Fleet: every runner that has sent a heartbeat (the list_runners query), its pool, version,
// capacity, the tasks it runs, when it was last seen, and whether it is stale (unseen for two
// heartbeat intervals). Heartbeats are not events, so the table refreshes every few seconds.

const running = (ids: string[]): Html | null =>
  ids.length
    ? html`<ul class="plain">${ids.map((id) => html`<li><a href="/tasks/${id}"><code>${id}</code></a></li>`)}</ul>`
    : null;

function table(runners: RunnerOut[], now: number): Html {
  const stale = runners.filter((r) => r.stale).length;
  const summary = html`<p id="fleet-summary">${runners.length} runner(s)${stale ? html`, <strong>${stale} stale</strong>` : null}.</p>`;
  if (runners.length === 0) return html`${summary}<p class="muted">No runner has sent a heartbeat yet.</p>`;
  return html`${summary}<div class="table-wrap"><table>
<caption class="visually-hidden">Runners</caption>
<thead><tr>${["Runner", "Status", "Pool", "Host", "Version", "Running", "Last seen", "Started"].map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
<tbody>${runners.map(
    (r) => html`<tr class="${r.stale ? "stale" : ""}">
<td><code>${r.id}</code></td>
<td>${r.stale ? html`<span class="state state-stale">stale</span>` : html`<span class="state state-live">live</span>`}</td>
<td>${r.pool}</td>
<td>${r.host}</td>
<td>${r.version}</td>
<td>${r.running_task_ids.length}/${r.concurrency}${running(r.running_task_ids)}</td>
<td>${ago(Date.parse(r.last_seen_at), now)}<br>${when(Date.parse(r.last_seen_at))}</td>
<td>${when(Date.parse(r.started_at))}</td>
</tr>`,
  )}</tbody></table></div>`;
}

export function fleetPages(app: FastifyInstance, ctx: ConsoleContext): void {
  const load = async () => {
    const now = ctx.deps.now();
    return {
      now,
      runners: (await listRunners(ctx.deps.store.db, now, ctx.deps.config.runner.heartbeatMs)).map(runnerView),
    };
  };

  app.get("/fleet", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    const { now, runners } = await load();
    const body = html`<h1>Fleet</h1>
${liveRegion({ src: "/fleet/table", on: [topics.tasks], every: 5 }, table(runners, now))}`;
    return sendPage(reply, { title: "Fleet", current: "fleet", principal: p, body, live: true });
  });

  app.get("/fleet/table", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    const { now, runners } = await load();
    return sendFragment(reply, table(runners, now));
  });
}
