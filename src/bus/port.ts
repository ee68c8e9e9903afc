import type { Heartbeat, TaskEvent } from "./jobs.ts";

/** One message handed to a consumer. Exactly one of ack / nak / term should be called. */
export type Delivery = {
  /** Parsed JSON body; `undefined` when the body was not JSON (the consumer should term). */
  data: unknown;
  subject: string;
  /** 1 on first delivery. */
  attempt: number;
  maxDeliver: number;
  /** Resolves once the bus has recorded the ack. */
  ack(): Promise<void>;
  /** Redeliver, after `delayMs` when given. */
  nak(delayMs?: number): void;
  /** Never redeliver. */
  term(reason?: string): void;
  /** Extends the ack deadline while work goes on. */
  working(): void;
};

export type Handler = (delivery: Delivery) => Promise<void>;

export type Subscription = {
  /** Stops fetching, waits for in-flight handlers to return. */
  stop(): Promise<void>;
};

/** A task message the bus gave up on: every delivery was used without an ack. */
export type DeadLetter = { pool: string; data: unknown; deliveries: number };

/**
 * What the bus remembers about a task's outcome, for runners (which have no database): `cancelled`
 * (a runner must not start it, and must not open its pull request) or `done` (its terminal event is
 * stored; a redelivery is acked without running it again). `done` is final: a later cancel marker
 * never replaces it.
 */
export type TaskMark = "cancelled" | "done";

/** A runner's delay before retrying a failed attempt (nak); the reconciler's delivery budget counts it. */
export const taskRetryBackoff = { baseMs: 1000, maxMs: 60_000 };

export type QueueHealth = { ok: true } | { ok: false; reason: string };

export type QueueSettings = {
  ackWaitMs: number;
  maxDeliver: number;
  eventsMaxAgeMs: number;
  /** De-duplication window for message ids (JetStream's duplicate_window). */
  duplicateWindowMs: number;
  tasksStream: string;
  eventsStream: string;
  /** First token of every subject: `<prefix>.tasks.<pool>`, `<prefix>.events.<task>`, … */
  subjectPrefix: string;
};

export const defaultQueueSettings: QueueSettings = {
  ackWaitMs: 30_000,
  maxDeliver: 5,
  eventsMaxAgeMs: 7 * 86_400_000,
  duplicateWindowMs: 120_000,
  tasksStream: "PITCREW_TASKS",
  eventsStream: "PITCREW_EVENTS",
  subjectPrefix: "pitcrew",
};

/**
 * The task queue: work (tasks) and what happened (events, heartbeats) between the control plane
 * and runners. Two adapters: JetStream for distributed mode, in-process for embedded mode, with
 * the same semantics (at-least-once, explicit ack, redelivery after the ack deadline, bounded
 * deliveries, de-duplication by message id).
 */
export interface TaskQueue {
  readonly kind: "memory" | "jetstream";
  /** Resolves when stored by the bus. A repeated `msgId` within the window is a no-op. */
  publishTask(pool: string, msgId: string, body: unknown): Promise<{ duplicate: boolean }>;
  consumeTasks(pool: string, opts: { concurrency: number }, handler: Handler): Subscription;
  /** Resolves when stored by the bus (a runner acks its task only after that). */
  publishTaskEvent(event: TaskEvent): Promise<void>;
  publishHeartbeat(heartbeat: Heartbeat): Promise<void>;
  consumeEvents(opts: { concurrency: number }, handler: Handler): Subscription;
  onDeadLetter(handler: (dead: DeadLetter) => Promise<void>): Subscription;
  /** Core-NATS notice to the runners listening now; for a durable cancel, also set the marker. */
  publishControl(taskId: string, action: "cancel"): Promise<void>;
  subscribeControl(handler: (taskId: string, action: string) => void): Subscription;
  /**
   * Sets a task's marker; kept for `eventsMaxAgeMs` after the last write. Setting `cancelled` on a
   * task marked `done` leaves `done`.
   */
  markTask(taskId: string, mark: TaskMark): Promise<void>;
  /** The task's marker, or null when none is set (or it expired). */
  taskMark(taskId: string): Promise<TaskMark | null>;
  /**
   * Task messages stored and not yet acknowledged (waiting or running), by pool. Pools with none
   * may be left out. A reading for the queue depth gauge, taken periodically (bus/depth.ts).
   */
  depths(): Promise<Record<string, number>>;
  health(): Promise<QueueHealth>;
  close(): Promise<void>;
}
