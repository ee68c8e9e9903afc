import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import type { TaskRow } from "../store/schema.ts";
import { isDuplicateKey, type Executor } from "../store/sql.ts";
import { newId } from "../shared/ids.ts";
import { invalid } from "../shared/errors.ts";
import { redactSecrets } from "../shared/redact.ts";
import { addToOutbox } from "../bus/outbox.ts";
import type { TaskMessage } from "../bus/jobs.ts";
import { appendEvent } from "../events/repo.ts";
import { getTask, updateTaskIfActive } from "./repo.ts";
import type { TerminalHook } from "../incidents/fix-outcome.ts";

export type NewTaskInput = {
  kind: string;
  pool?: string;
  payload: Record<string, unknown>;
  incidentId?: string | null;
  createdBy: string;
  channel: string;
  /** Same key → same task: a retried request does not queue the work twice. */
  idempotencyKey?: string;
};

/**
 * Writes a queued task, its outbox row and its `task.created` event with the caller's executor,
 * so producers can make the task part of their own transaction. Returns the task id.
 */
export async function enqueueTask(
  trx: Executor,
  dialect: Store["dialect"],
  input: NewTaskInput,
  now: number,
): Promise<string> {
  if (!/^[a-z][a-z0-9_.-]{0,63}$/.test(input.kind)) throw invalid("task.invalid_kind", "kind must be a lowercase name");
  const pool = input.pool ?? "default";
  const id = newId("tsk", now);
  const message: TaskMessage = {
    v: 1,
    taskId: id,
    kind: input.kind,
    pool,
    incidentId: input.incidentId ?? null,
    payload: input.payload,
    createdAt: now,
  };
  await trx
    .insertInto("tasks")
    .values({
      id,
      incident_id: input.incidentId ?? null,
      kind: input.kind,
      pool,
      state: "queued",
      payload: JSON.stringify(input.payload),
      result: null,
      error: null,
      attempts: 0,
      runner_id: null,
      idempotency_key: input.idempotencyKey ?? null,
      created_by: input.createdBy.slice(0, 255),
      created_at: now,
      updated_at: now,
      started_at: null,
      finished_at: null,
      last_event_at: null,
    })
    .execute();
  await addToOutbox(trx, { topic: "task", pool, msgId: id, body: message }, now);
  await appendEvent(
    trx,
    dialect,
    {
      type: "task.created",
      taskId: id,
      incidentId: input.incidentId,
      actor: input.createdBy,
      channel: input.channel,
      data: { kind: input.kind, pool, payload: redactSecrets(input.payload) },
      occurredAt: now,
    },
    now,
  );
  return id;
}

export type TaskDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  onEnqueued?: () => void;
  onTerminal?: TerminalHook;
};

export function createTaskService(deps: TaskDeps) {
  const { store } = deps;

  return {
    /**
     * Writes the task, its outbox row and its `task.created` event in one transaction; the relay
     * queues it after commit. With an idempotency key that already exists, returns that task.
     */
    async create(input: NewTaskInput): Promise<{ task: TaskRow; created: boolean }> {
      if (!/^[a-z][a-z0-9_.-]{0,63}$/.test(input.kind))
        throw invalid("task.invalid_kind", "kind must be a lowercase name");
      if (input.idempotencyKey) {
        const existing = await store.db
          .selectFrom("tasks")
          .selectAll()
          .where("idempotency_key", "=", input.idempotencyKey)
          .executeTakeFirst();
        if (existing) return { task: existing, created: false };
      }
      const now = deps.now();
      let id: string;
      try {
        id = await store.db.transaction().execute((trx) => enqueueTask(trx, store.dialect, input, now));
      } catch (err) {
        // Lost a race on the idempotency key: the other request's task is the answer.
        if (input.idempotencyKey && isDuplicateKey(err)) {
          const existing = await store.db
            .selectFrom("tasks")
            .selectAll()
            .where("idempotency_key", "=", input.idempotencyKey)
            .executeTakeFirstOrThrow();
          return { task: existing, created: false };
        }
        throw err;
      }
      deps.onEnqueued?.();
      return { task: (await getTask(store.db, id))!, created: true };
    },

    /**
     * Marks a task failed for a reason outside any runner (dead letter, vanished runner). The bus
     * marks it `done` too, so a runner that still gets its message acks it without running it.
     */
    async fail(taskId: string, reason: string, actor: string, channel: string): Promise<boolean> {
      const now = deps.now();
      const changed = await store.db.transaction().execute(async (trx) => {
        const changed = await updateTaskIfActive(trx, taskId, {
          state: "failed",
          error: reason,
          finished_at: now,
          updated_at: now,
        });
        if (changed) {
          await addToOutbox(trx, { topic: "control", taskId, mark: "done" }, now);
          const task = await getTask(trx, taskId);
          await appendEvent(
            trx,
            store.dialect,
            {
              type: "task.failed",
              taskId,
              incidentId: task?.incident_id,
              actor,
              channel,
              reason,
              data: { error: reason },
              occurredAt: now,
            },
            now,
          );
          if (task && deps.onTerminal) await deps.onTerminal(trx, task, "failed", reason, now);
        }
        return changed;
      });
      if (changed) deps.onEnqueued?.();
      return changed;
    },
  };
}

export type TaskService = ReturnType<typeof createTaskService>;
