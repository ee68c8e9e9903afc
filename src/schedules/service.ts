import { appendEvent } from "../events/repo.ts";
import { conflict, invalid, notFound } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import { isDuplicateKey } from "../store/sql.ts";
import { formatProblem, loadYamlFolder, type FileProblem } from "../shared/yaml-folder.ts";
import {
  getScheduleByName,
  insertSchedule,
  listSchedules,
  recentRuns,
  sameSpec,
  specColumns,
  specOfRow,
  type ScheduleRow,
} from "./repo.ts";
import { ScheduleSpec } from "./schema.ts";

// Schedules as operators manage them: files in SCHEDULES_DIR synced into the database (at start and
// on demand; `prune` deletes file schedules whose file is gone), and schedules made through MCP,
// which a file sync never touches. Every change is an event (`schedule.created|updated|deleted`).

export type Actor = { actor: string; channel: string };

export type SyncResult = {
  created: string[];
  updated: string[];
  unchanged: string[];
  pruned: string[];
  problems: FileProblem[];
  skipped: string[];
};

export function createScheduleService(deps: { store: Store; log: Logger; now: () => number; dir: string }) {
  const { store } = deps;
  const log = deps.log.child({ component: "schedules" });

  const event = (
    trx: Parameters<typeof appendEvent>[0],
    type: string,
    s: Pick<ScheduleRow, "id" | "name">,
    by: Actor,
    reason: string,
    data: Record<string, unknown>,
    now: number,
  ) =>
    appendEvent(
      trx,
      store.dialect,
      { type, ...by, reason, data: { schedule: s.name, scheduleId: s.id, ...data }, occurredAt: now },
      now,
    );

  /** Reads the folder and brings the file schedules in line with it. A folder that cannot be read changes nothing. */
  async function sync(by: Actor, opts: { prune?: boolean } = {}): Promise<SyncResult> {
    const loaded = loadYamlFolder(deps.dir, ScheduleSpec, { what: "schedule", nameOf: (s) => s.name });
    for (const p of loaded.problems) log.error({ problem: formatProblem(p) }, "schedule not loaded");
    const result: SyncResult = {
      created: [],
      updated: [],
      unchanged: [],
      pruned: [],
      problems: loaded.problems,
      skipped: [],
    };
    if (loaded.unreadableFolder) return result;
    const now = deps.now();
    for (const { item: spec, file } of loaded.items) {
      // Replicas starting together sync the same files: one creates the schedule, the other's
      // INSERT hits the unique name and its transaction runs again, finding the schedule there.
      await onceMore(isDuplicateKey, () => syncOne(spec, file));
    }
    async function syncOne(spec: ScheduleSpec, file: string) {
      await store.db.transaction().execute(async (trx) => {
        const cur = await getScheduleByName(trx, spec.name);
        if (!cur) {
          const row = await insertSchedule(trx, spec, "file", file, now);
          await event(trx, "schedule.created", row, by, `from ${file}`, { enabled: spec.enabled, origin: file }, now);
          result.created.push(spec.name);
        } else if (cur.source !== "file") {
          // A schedule made through MCP keeps its name: the file is reported, not applied.
          result.skipped.push(spec.name);
          result.problems.push({
            file,
            line: 1,
            message: `schedule "${spec.name}" exists and was made through MCP (${cur.origin}); rename one of them`,
          });
        } else if (sameSpec(cur, spec, now) && cur.origin === file) {
          result.unchanged.push(spec.name);
        } else {
          const cols = specColumns(spec, now);
          // Unchanged timing keeps the run already due; a new expression or re-enabling starts afresh.
          const keepNext =
            cur.enabled === cols.enabled &&
            cur.cron === cols.cron &&
            cur.timezone === cols.timezone &&
            cur.next_run_at !== null;
          await trx
            .updateTable("schedules")
            .set({ ...cols, origin: file, ...(keepNext ? { next_run_at: cur.next_run_at } : {}) })
            .where("id", "=", cur.id)
            .execute();
          await event(trx, "schedule.updated", cur, by, `from ${file}`, { enabled: spec.enabled, origin: file }, now);
          result.updated.push(spec.name);
        }
      });
    }
    if (opts.prune) {
      const inFiles = new Set(loaded.items.map((i) => i.item.name));
      for (const s of await listSchedules(store.db)) {
        if (s.source !== "file" || inFiles.has(s.name)) continue;
        await store.db.transaction().execute(async (trx) => {
          const res = await trx
            .deleteFrom("schedules")
            .where("id", "=", s.id)
            .where("source", "=", "file")
            .executeTakeFirst();
          if (Number(res.numDeletedRows) === 0) return;
          await event(trx, "schedule.deleted", s, by, "its file is gone (sync with prune)", { origin: s.origin }, now);
          result.pruned.push(s.name);
        });
      }
    }
    log.info(
      {
        created: result.created.length,
        updated: result.updated.length,
        pruned: result.pruned.length,
        problems: result.problems.length,
      },
      "schedules synced",
    );
    return result;
  }

  async function get(name: string): Promise<ScheduleRow> {
    const s = await getScheduleByName(store.db, name);
    if (!s) throw notFound("schedule.not_found", `schedule ${name} does not exist`);
    return s;
  }

  async function create(input: unknown, by: Actor): Promise<ScheduleRow> {
    const spec = parseSpec(input);
    const now = deps.now();
    return store.db.transaction().execute(async (trx) => {
      if (await getScheduleByName(trx, spec.name))
        throw conflict("schedule.exists", `schedule ${spec.name} exists; update it or choose another name`);
      const row = await insertSchedule(trx, spec, "mcp", by.actor, now);
      await event(trx, "schedule.created", row, by, "made through MCP", { enabled: spec.enabled }, now);
      return row;
    });
  }

  /** Changes the given fields of a schedule; a file schedule changed here is overwritten by the next sync of its file. */
  async function update(name: string, changes: Record<string, unknown>, by: Actor): Promise<ScheduleRow> {
    const now = deps.now();
    return store.db.transaction().execute(async (trx) => {
      const cur = await getScheduleByName(trx, name);
      if (!cur) throw notFound("schedule.not_found", `schedule ${name} does not exist`);
      // A new task replaces a skill run and the other way round.
      const { task, skill, params, ...rest } = specOfRow(cur);
      const what = "task" in changes || "skill" in changes ? {} : { task, skill, params };
      const spec = parseSpec({ ...rest, ...what, ...changes, name });
      const cols = specColumns(spec, now);
      const keepNext =
        cur.enabled === cols.enabled &&
        cur.cron === cols.cron &&
        cur.timezone === cols.timezone &&
        cur.next_run_at !== null;
      await trx
        .updateTable("schedules")
        .set({ ...cols, ...(keepNext ? { next_run_at: cur.next_run_at } : {}) })
        .where("id", "=", cur.id)
        .execute();
      await event(
        trx,
        "schedule.updated",
        cur,
        by,
        `changed ${Object.keys(changes).join(", ") || "nothing"}`,
        { changes: Object.keys(changes) },
        now,
      );
      return (await getScheduleByName(trx, name))!;
    });
  }

  async function remove(name: string, by: Actor): Promise<ScheduleRow> {
    const now = deps.now();
    return store.db.transaction().execute(async (trx) => {
      const cur = await getScheduleByName(trx, name);
      if (!cur) throw notFound("schedule.not_found", `schedule ${name} does not exist`);
      await trx.deleteFrom("schedule_runs").where("schedule_id", "=", cur.id).execute();
      await trx.deleteFrom("schedules").where("id", "=", cur.id).execute();
      await event(
        trx,
        "schedule.deleted",
        cur,
        by,
        cur.source === "file" ? `deleted; its file ${cur.origin} brings it back at the next sync` : "deleted",
        { origin: cur.origin },
        now,
      );
      return cur;
    });
  }

  return {
    sync,
    get,
    create,
    update,
    remove,
    list: () => listSchedules(store.db),
    runs: (s: ScheduleRow, limit?: number) => recentRuns(store.db, s.id, limit),
  };
}

function parseSpec(input: unknown): ScheduleSpec {
  const r = ScheduleSpec.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw invalid("schedule.invalid", `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`);
  }
  return r.data;
}

export type ScheduleService = ReturnType<typeof createScheduleService>;

/** Runs `fn`, and once more when its first attempt fails with an error `retry` accepts. */
async function onceMore<T>(retry: (err: unknown) => boolean, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!retry(err)) throw err;
    return fn();
  }
}
