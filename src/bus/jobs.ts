import { z } from "zod";

// The one catalogue of what travels on the bus. Producers build these, consumers parse them;
// a message that fails its schema is terminated, never retried.

export const TaskMessage = z.object({
  v: z.literal(1),
  taskId: z.string().min(1).max(40),
  kind: z.string().min(1).max(64),
  pool: z.string().min(1).max(64),
  incidentId: z.string().max(40).nullable(),
  payload: z.record(z.string(), z.unknown()),
  createdAt: z.number().int(),
});
export type TaskMessage = z.infer<typeof TaskMessage>;

const eventBase = {
  id: z.string().min(1).max(40),
  taskId: z.string().min(1).max(40),
  runnerId: z.string().min(1).max(128),
  attempt: z.number().int().min(1),
  at: z.number().int(),
};

export const TaskEvent = z.discriminatedUnion("type", [
  z.object({ ...eventBase, type: z.literal("task.started") }),
  z.object({
    ...eventBase,
    type: z.literal("task.progress"),
    message: z.string().max(4000),
    percent: z.number().min(0).max(100).optional(),
  }),
  z.object({
    ...eventBase,
    type: z.literal("task.log"),
    stream: z.enum(["stdout", "stderr", "runner"]),
    line: z.string().max(16_000),
  }),
  z.object({
    ...eventBase,
    type: z.literal("task.pr_opened"),
    url: z.string().max(2000),
    branch: z.string().max(255),
    number: z.number().int().optional(),
  }),
  z.object({ ...eventBase, type: z.literal("task.succeeded"), result: z.unknown() }),
  z.object({
    ...eventBase,
    type: z.literal("task.failed"),
    error: z.string().max(16_000),
    code: z.string().max(128).optional(),
  }),
  z.object({ ...eventBase, type: z.literal("task.cancelled"), reason: z.string().max(4000) }),
]);
export type TaskEvent = z.infer<typeof TaskEvent>;
export type TaskEventType = TaskEvent["type"];

export const Heartbeat = z.object({
  type: z.literal("runner.heartbeat"),
  id: z.string().min(1).max(40),
  runnerId: z.string().min(1).max(128),
  host: z.string().max(255),
  version: z.string().max(64),
  pool: z.string().max(64),
  concurrency: z.number().int().min(0),
  running: z.array(z.string().max(40)).max(1024),
  totals: z.object({ succeeded: z.number().int(), failed: z.number().int(), cancelled: z.number().int() }),
  startedAt: z.number().int(),
  at: z.number().int(),
});
export type Heartbeat = z.infer<typeof Heartbeat>;

export const BusEvent = z.union([TaskEvent, Heartbeat]);
export type BusEvent = z.infer<typeof BusEvent>;

export const TERMINAL_EVENT_TYPES = new Set<TaskEventType>(["task.succeeded", "task.failed", "task.cancelled"]);
