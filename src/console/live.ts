import type { FastifyInstance } from "fastify";
import type { Store } from "../store/db.ts";
import type { Logger } from "../shared/logger.ts";
import { errorMessage } from "../shared/errors.ts";
import { html, type Html } from "./html.ts";
import type { ConsoleAuth } from "./auth.ts";
import { securityHeaders } from "./security.ts";

// Live updates without reloading. A page marks the parts that change:
//
//   liveRegion({ src: `/tasks/${id}/log`, on: [topics.task(id)] }, initialHtml)
//     → <div data-live="/tasks/tsk_…/log" data-live-on="task:tsk_…">…</div>
//
// and is rendered with page({ …, live: true }). The script (assets/console.js) listens to the
// server-sent events of GET /live; each message names topics, and every region listening to one of
// them fetches its `src` again (header X-Pitcrew-Fragment: 1) and replaces its content. Nothing is
// applied from the message itself: a message lost or late only delays a refresh, and after a
// reconnect every region refreshes. `every: 5` also refreshes a region every 5 s (for things that
// change with time, not events: a runner going stale). Keep form fields you type into outside
// regions — a refresh replaces them.
//
// Topics, from the events table: `incident:<id>` and `incidents` (any incident event), `task:<id>`
// and `tasks`, `approvals` (approval.*), `system` (system.*: pause, resume, skills); `*` = all.
//
// One poller per process tails the events table by seq for every connection (started by the first
// one, stopped after the last). seq is an auto-increment and concurrent transactions can commit out
// of order, so a seq skipped over is looked for again for a few seconds before it is given up.

export const topics = {
  incident: (id: string) => `incident:${id}`,
  task: (id: string) => `task:${id}`,
  incidents: "incidents",
  tasks: "tasks",
  approvals: "approvals",
  system: "system",
} as const;

export type LiveRegion = {
  src: string;
  on: readonly string[];
  every?: number;
  tag?: "div" | "tbody" | "section" | "ol" | "ul";
  id?: string;
  class?: string;
};

export function liveRegion(r: LiveRegion, body: Html): Html {
  const tag = r.tag ?? "div";
  const attrs = html` data-live="${r.src}" data-live-on="${r.on.join(" ")}"${r.every ? html` data-live-every="${r.every}"` : null}${
    r.id ? html` id="${r.id}"` : null
  }${r.class ? html` class="${r.class}"` : null}`;
  // aria-live only on block regions: screen readers announce what changed.
  const polite = tag === "tbody" ? null : html` aria-live="polite"`;
  return html`<${rawTag(tag)}${attrs}${polite}>${body}</${rawTag(tag)}>`;
}

const rawTag = (t: NonNullable<LiveRegion["tag"]>): Html =>
  ({ div: html`div`, tbody: html`tbody`, section: html`section`, ol: html`ol`, ul: html`ul` })[t];

export type EventRef = { seq: number; type: string; incident_id: string | null; task_id: string | null };

export function topicsOf(e: Omit<EventRef, "seq">): string[] {
  const out: string[] = [];
  if (e.incident_id) out.push(topics.incident(e.incident_id), topics.incidents);
  if (e.task_id) out.push(topics.task(e.task_id), topics.tasks);
  if (e.type.startsWith("approval.")) out.push(topics.approvals);
  if (e.type.startsWith("system.") || e.type.startsWith("skills.")) out.push(topics.system);
  return out;
}

export type LiveMessage = { seq: number; topics: string[] };

const GAP_WAIT_MS = 10_000;
const MAX_GAPS = 1000;
const MAX_TOPICS = 200;

export function createLiveHub(deps: { store: Store; log: Logger; intervalMs?: number }) {
  const log = deps.log.child({ component: "console-live" });
  const listeners = new Set<(m: LiveMessage) => void>();
  const closers = new Set<() => void>();
  let timer: NodeJS.Timeout | undefined;
  let high: number | undefined;
  const gaps = new Map<number, number>();
  let failing = false;
  let closed = false;

  const cols = ["seq", "type", "incident_id", "task_id"] as const;

  async function poll(): Promise<void> {
    const db = deps.store.db;
    if (high === undefined) {
      const r = await db
        .selectFrom("events")
        .select((eb) => eb.fn.max("seq").as("m"))
        .executeTakeFirst();
      high = Number(r?.m ?? 0);
      return;
    }
    const rows = await db
      .selectFrom("events")
      .select(cols)
      .where("seq", ">", high)
      .orderBy("seq")
      .limit(1000)
      .execute();
    const late = gaps.size
      ? await db
          .selectFrom("events")
          .select(cols)
          .where("seq", "in", [...gaps.keys()])
          .execute()
      : [];
    const now = Date.now();
    for (const r of late) gaps.delete(Number(r.seq));
    for (const r of rows) {
      const seq = Number(r.seq);
      if (seq - high - 1 <= MAX_GAPS) for (let s = high + 1; s < seq && gaps.size < MAX_GAPS; s++) gaps.set(s, now);
      high = seq;
    }
    for (const [s, at] of gaps) if (now - at > GAP_WAIT_MS) gaps.delete(s);
    const found = [...late, ...rows];
    if (found.length === 0) return;
    const set = new Set<string>();
    for (const r of found) for (const t of topicsOf(r)) set.add(t);
    const msg: LiveMessage = { seq: high, topics: set.size > MAX_TOPICS ? ["*"] : [...set] };
    for (const l of listeners) l(msg);
  }

  function tick() {
    timer = undefined;
    poll()
      .then(() => {
        if (failing) log.info("reading events again");
        failing = false;
      })
      .catch((err) => {
        if (!failing) log.warn({ error: errorMessage(err) }, "could not read events for live updates; retrying");
        failing = true;
      })
      .finally(() => {
        if (!closed && listeners.size > 0) timer = setTimeout(tick, deps.intervalMs ?? 500);
      });
  }

  return {
    /** Calls `listener` for every batch of new events; `onClose` when the hub shuts down. Returns the unsubscribe. */
    subscribe(listener: (m: LiveMessage) => void, onClose: () => void): () => void {
      listeners.add(listener);
      closers.add(onClose);
      if (!timer && !closed) {
        // A new tail starts from now; what happened between a page's rendering and its stream's
        // start is covered by the script, which refreshes every region on `hello`.
        if (listeners.size === 1) {
          high = undefined;
          gaps.clear();
        }
        tick();
      }
      return () => {
        listeners.delete(listener);
        closers.delete(onClose);
      };
    },
    close(): void {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const c of [...closers]) c();
      listeners.clear();
      closers.clear();
    },
    get connections() {
      return listeners.size;
    },
  };
}

export type LiveHub = ReturnType<typeof createLiveHub>;

/** GET /live: the event stream (read scope). A comment every `heartbeatMs` keeps proxies from closing it. */
export function liveRoutes(app: FastifyInstance, ctx: { auth: ConsoleAuth; hub: LiveHub; heartbeatMs?: number }): void {
  app.get("/live", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...securityHeaders(),
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write("retry: 3000\nevent: hello\ndata: {}\n\n");
    const beat = setInterval(() => res.write(": ping\n\n"), ctx.heartbeatMs ?? 15_000);
    const end = () => {
      clearInterval(beat);
      unsubscribe();
      if (!res.writableEnded) res.end();
    };
    const unsubscribe = ctx.hub.subscribe((m) => res.write(`event: change\ndata: ${JSON.stringify(m)}\n\n`), end);
    req.raw.on("close", end);
  });
}
