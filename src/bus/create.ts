import type { Config } from "../config/load.ts";
import type { Logger } from "../shared/logger.ts";
import { createMemoryQueue } from "./memory.ts";
import type { QueueSettings, TaskQueue } from "./port.ts";

// The queue adapter the configuration asks for; shared by the control plane and the runner
// process (which needs nothing else of the control plane's wiring). The JetStream adapter and
// the NATS client (~60 modules) are loaded only when NATS_URL is set: an embedded control plane
// starts without them.

export function queueSettings(config: Config): Partial<QueueSettings> {
  const prefix = config.nats?.prefix ?? "pitcrew";
  return {
    ackWaitMs: config.task.ackWaitMs,
    maxDeliver: config.task.maxDeliver,
    eventsMaxAgeMs: config.eventsMaxAgeMs,
    subjectPrefix: prefix,
    tasksStream: `${prefix.toUpperCase()}_TASKS`,
    eventsStream: `${prefix.toUpperCase()}_EVENTS`,
  };
}

export async function createQueue(config: Config, log: Logger, name: string): Promise<TaskQueue> {
  if (!config.nats) return createMemoryQueue({ settings: queueSettings(config), log });
  const { createJetStreamQueue } = await import("./jetstream.ts");
  return createJetStreamQueue({
    servers: config.nats.servers,
    token: config.nats.token,
    user: config.nats.user,
    password: config.nats.password,
    replicas: config.nats.replicas,
    name,
    settings: queueSettings(config),
    log: log.child({ component: "nats" }),
  });
}
