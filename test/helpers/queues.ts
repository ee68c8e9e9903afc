import { randomBytes } from "node:crypto";
import { createJetStreamQueue, marksBucketName } from "../../src/bus/jetstream.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import type { QueueSettings, TaskQueue } from "../../src/bus/port.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { hasNats, NATS_URL } from "./services.ts";

export type QueueFactory = {
  name: "memory" | "jetstream";
  available: boolean;
  /** A queue on its own streams and subjects, so tests never see each other's messages. */
  make(settings?: Partial<QueueSettings>, servers?: string[]): Promise<TaskQueue & { settings: QueueSettings }>;
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
      async make(settings) {
        const s = uniqueSettings(settings);
        return Object.assign(createMemoryQueue({ settings: s, log: silentLogger }), { settings: s });
      },
      async cleanup() {},
    },
    {
      name: "jetstream",
      available: natsUp,
      async make(settings, servers = [NATS_URL]) {
        const s = uniqueSettings(settings);
        const q = createJetStreamQueue({
          servers,
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
