import { randomBytes } from "node:crypto";
import { createJetStreamQueue, marksBucketName } from "../../src/bus/jetstream.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import type { QueueSettings, TaskQueue } from "../../src/bus/port.ts";
import type { Clock } from "../../src/shared/clock.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { hasNats, NATS_URL } from "./services.ts";

export type QueueFactory = {
  name: "memory" | "jetstream";
  available: boolean;
  /**
   * A queue on its own streams and subjects, so tests never see each other's messages. `clock`
   * drives the in-process queue's timers (the server keeps JetStream's).
   */
  make(
    settings?: Partial<QueueSettings>,
    opts?: { servers?: string[]; clock?: Clock },
  ): Promise<TaskQueue & { settings: QueueSettings }>;
  /** Removes what make() created on the server. */
  cleanup(q: TaskQueue & { settings: QueueSettings }): Promise<void>;
};

export function uniqueSettings(extra: Partial<QueueSettings> = {}): QueueSettings {
  const tag = randomBytes(4).toString("hex");
  return {
    ackWaitMs: 2000,
    maxDeliver: 3,
    eventsMaxAgeMs: 3_600_000,
    duplicateWindowMs: 120_000,
    tasksStream: `T_${tag}_TASKS`,
    eventsStream: `T_${tag}_EVENTS`,
    subjectPrefix: `t${tag}`,
    ...extra,
  };
}

export async function queueFactories(): Promise<QueueFactory[]> {
  const natsUp = await hasNats();
  return [
    {
      name: "memory",
      available: true,
      async make(settings, opts) {
        const s = uniqueSettings(settings);
        return Object.assign(createMemoryQueue({ settings: s, log: silentLogger, clock: opts?.clock }), {
          settings: s,
        });
      },
      async cleanup() {},
    },
    {
      name: "jetstream",
      available: natsUp,
      async make(settings, opts) {
        const s = uniqueSettings(settings);
        const q = createJetStreamQueue({
          servers: opts?.servers ?? [NATS_URL],
          name: "pitcrew-test",
          settings: s,
          log: silentLogger,
          publishTimeoutMs: 3000,
        });
        await q.ready();
        return Object.assign(q, { settings: s });
      },
      async cleanup(q) {
        await deleteStreams(q.settings);
      },
    },
  ];
}

/** Removes a test's streams (and its task-markers bucket) from the shared NATS server. */
export async function deleteStreams(settings: Pick<QueueSettings, "tasksStream" | "eventsStream">): Promise<void> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: [NATS_URL] });
  try {
    const jsm = await jetstreamManager(nc);
    for (const name of [settings.tasksStream, settings.eventsStream, `KV_${marksBucketName(settings.tasksStream)}`])
      await jsm.streams.delete(name).catch(() => false);
  } finally {
    await nc.close();
  }
}

/** Messages left in a JetStream stream, read through a connection of our own. */
export async function streamMessages(stream: string): Promise<number> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: [NATS_URL] });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(stream)).state.messages;
  } finally {
    await nc.close();
  }
}

/** What the server counts for a durable consumer. */
export type ConsumerState = {
  /** Messages on its subjects not yet delivered. */
  pending: number;
  /** Delivered and neither acked nor terminated (a nak'ed one waiting for its redelivery counts). */
  ackPending: number;
  /** Every delivery it made, redeliveries included. */
  delivered: number;
};

/**
 * Waits until the server has nothing left to deliver on a durable consumer (nothing pending,
 * nothing awaiting an ack), so no delivery can follow; resolves with how many it made. This is how
 * a test shows that something was *not* delivered without sleeping for a while first.
 */
export async function untilConsumerIdle(stream: string, durable: string, timeoutMs = 15_000): Promise<ConsumerState> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: [NATS_URL] });
  try {
    const jsm = await jetstreamManager(nc);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await jsm.consumers.info(stream, durable);
      const state = {
        pending: info.num_pending,
        ackPending: info.num_ack_pending,
        delivered: info.delivered.consumer_seq,
      };
      if (state.pending === 0 && state.ackPending === 0) return state;
      if (Date.now() > deadline)
        throw new Error(`consumer ${stream}/${durable} still busy after ${timeoutMs} ms: ${JSON.stringify(state)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await nc.close();
  }
}
