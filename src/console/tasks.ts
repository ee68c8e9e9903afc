import type { FastifyInstance } from "fastify";
import { listTasks, getTask } from "../tasks/repo.ts";
import { taskView, type TaskView } from "../mcp/views.ts";
import type { EventRow, TaskState } from "../store/schema.ts";
import { notFound } from "../shared/errors.ts";
import { html, type Html } from "./html.ts";
import { json, outsideLink, stateBadge, when, withQuery } from "./format.ts";
import { liveRegion, topics } from "./live.ts";
import { sendFragment, sendPage } from "./respond.ts";
import type { ConsoleContext } from "./routes.ts";

// Tasks: GET /tasks (newest first, by state, cursor pages; rows refresh as tasks move) and
// GET /tasks/<id> (its state, runner, progress and log, refreshed live from its events). The same
// queries as the list_tasks and get_task_progress tools (tasks/repo.ts, mcp/views.ts).

const STATES: TaskState[] = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 50;
const LOG_LINES = 500;

type ListQuery = { state?: TaskState; cursor?: string };

function parseList(q: Record<string, unknown>): ListQuery {
  const state = STATES.find((s) => s === q.state);
  const cursor = typeof q.cursor === "string" && /^tsk_[0-9A-Za-z]{1,40}$/.test(q.cursor) ? q.cursor : undefined;
  return { state, cursor };
}

function rows(tasks: TaskView[]): Html {
  if (tasks.length === 0) return html`<tr><td colspan="7" class="empty">No tasks.</td></tr>`;
  return html`${tasks.map(
    (t) => html`<tr>
<td><a href="/tasks/${t.id}"><code>${t.id}</code></a></td>
<td>${t.kind}</td>
<td>${stateBadge(t.state)}</td>
<td>${t.runner_id ?? html`<span class="muted">—</span>`}</td>
<td>${t.incident_id ? html`<a href="/incidents/${t.incident_id}"><code>${t.incident_id}</code></a>` : html`<span class="muted">—</span>`}</td>
<td>${t.attempts}</td>
<td>${when(Date.parse(t.created_at))}</td>
</tr>`,
  )}`;
}

export function tasksPages(app: FastifyInstance, ctx: ConsoleContext): void {
  const db = () => ctx.deps.store.db;

  async function load(q: ListQuery) {
    const found = await listTasks(db(), { state: q.state, afterId: q.cursor, limit: PAGE });
    return { tasks: found.map(taskView), next: found.length === PAGE ? found[found.length - 1]!.id : undefined };
  }

  app.get("/tasks", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    const q = parseList(req.query as Record<string, unknown>);
    const { tasks, next } = await load(q);
    const body = html`<h1>Tasks</h1>
<form method="get" action="/tasks" class="filters">
<label for="state">State</label>
<select id="state" name="state"><option value="">any</option>${STATES.map(
      (s) => html`<option value="${s}"${s === q.state ? html` selected` : null}>${s}</option>`,
    )}</select>
<button type="submit">Filter</button>
</form>
<div class="table-wrap"><table>
<caption class="visually-hidden">Tasks, newest first</caption>
<thead><tr>${["Task", "Kind", "State", "Runner", "Incident", "Attempts", "Created"].map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
${liveRegion({ tag: "tbody", src: withQuery("/tasks/rows", { state: q.state, cursor: q.cursor }), on: [topics.tasks] }, rows(tasks))}
</table></div>
<nav class="pager" aria-label="Pages">${
      q.cursor ? html`<a href="${withQuery("/tasks", { state: q.state })}">Newest</a>` : null
    }${next ? html`<a href="${withQuery("/tasks", { state: q.state, cursor: next })}" rel="next">Older</a>` : null}</nav>`;
    return sendPage(reply, { title: "Tasks", current: "tasks", principal: p, body, live: true });
  });

  app.get("/tasks/rows", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    const { tasks } = await load(parseList(req.query as Record<string, unknown>));
    return sendFragment(reply, rows(tasks));
  });

  async function detail(id: string): Promise<{ task: TaskView; live: Html }> {
    const row = await getTask(db(), id);
    if (!row) throw notFound("task.not_found", `task ${id} does not exist`);
    const task = taskView(row);
    const events = (
      await db()
        .selectFrom("events")
        .selectAll()
        .where("task_id", "=", id)
        .orderBy("seq", "desc")
        .limit(LOG_LINES)
        .execute()
    ).reverse();
    return { task, live: liveBody(task, events) };
  }

  app.get<{ Params: { id: string } }>("/tasks/:id", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    const { task, live } = await detail(req.params.id);
    const body = html`<p class="crumbs"><a href="/tasks">Tasks</a></p>
<h1>Task <code>${task.id}</code></h1>
${liveRegion({ src: `/tasks/${task.id}/live`, on: [topics.task(task.id)], id: "task-live" }, live)}
<h2>Input</h2>
${json(task.payload)}`;
    return sendPage(reply, { title: `Task ${task.id}`, current: "tasks", principal: p, body, live: true });
  });

  app.get<{ Params: { id: string } }>("/tasks/:id/live", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    return sendFragment(reply, (await detail(req.params.id)).live);
  });
}

function liveBody(t: TaskView, events: EventRow[]): Html {
  const progress = [...events].reverse().find((e) => e.type === "task.progress");
  const pd = progress ? (parse(progress.data) as { message?: unknown; percent?: unknown }) : {};
  const percent = typeof pd.percent === "number" ? pd.percent : null;
  return html`<dl class="facts">
<dt>State</dt><dd id="task-state">${stateBadge(t.state)}</dd>
<dt>Kind</dt><dd>${t.kind}</dd>
<dt>Pool</dt><dd>${t.pool}</dd>
<dt>Runner</dt><dd>${t.runner_id ?? "—"}</dd>
<dt>Incident</dt><dd>${t.incident_id ? html`<a href="/incidents/${t.incident_id}"><code>${t.incident_id}</code></a>` : "—"}</dd>
<dt>Attempts</dt><dd>${t.attempts}</dd>
<dt>Created by</dt><dd>${t.created_by}</dd>
<dt>Created</dt><dd>${when(Date.parse(t.created_at))}</dd>
<dt>Started</dt><dd>${when(t.started_at ? Date.parse(t.started_at) : null)}</dd>
<dt>Finished</dt><dd>${when(t.finished_at ? Date.parse(t.finished_at) : null)}</dd>
${t.error ? html`<dt>Error</dt><dd class="error">${t.error}</dd>` : null}
</dl>
<h2>Progress</h2>
${
  progress
    ? html`<p id="task-progress">${
        percent !== null
          ? html`<progress max="100" value="${percent}" aria-label="Progress">${percent}%</progress> <span>${percent}%</span> `
          : null
      }<span>${typeof pd.message === "string" ? pd.message : ""}</span></p>`
    : html`<p id="task-progress" class="muted">No progress reported yet.</p>`
}
<h2>Log</h2>
${events.length ? html`<ol class="log" id="task-log">${events.map(logLine)}</ol>` : html`<p class="muted" id="task-log">Nothing yet.</p>`}`;
}

function logLine(e: EventRow): Html {
  const d = parse(e.data) as Record<string, unknown>;
  let text: Html;
  if (e.type === "task.log") text = html`<span class="stream">${String(d.stream ?? "")}</span> ${String(d.line ?? "")}`;
  else if (e.type === "task.progress")
    text = html`${String(d.message ?? "")}${typeof d.percent === "number" ? ` (${d.percent}%)` : ""}`;
  else if (e.type === "task.pr_opened")
    text = html`pull request ${outsideLink(typeof d.url === "string" ? d.url : null, String(d.url ?? ""))}`;
  else text = html`${e.reason ?? ""}`;
  const time = html`<span class="log-time">${when(Number(e.occurred_at))}</span>`;
  return html`<li>${time} <span class="log-type">${e.type}</span> <span class="log-text">${text}</span></li>`;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}
