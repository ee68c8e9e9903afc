import { TaskMessage } from "../bus/jobs.ts";
import type { DeadLetter, Subscription, TaskQueue } from "../bus/port.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { TaskService } from "./service.ts";

/** A task whose deliveries ran out ends `failed` with that reason. */
export function handleDeadLetters(deps: {
  queue: TaskQueue;
  tasks: TaskService;
  log: Logger;
  metrics?: Pick<Metrics, "deadLetters">;
}): Subscription {
  return deps.queue.onDeadLetter(async (dead: DeadLetter) => {
    const msg = TaskMessage.safeParse(dead.data);
    if (!msg.success) {
      deps.log.error({ pool: dead.pool }, "dead letter without a valid task message dropped");
      return;
    }
    const reason = `max_deliver exhausted: no runner acknowledged the task after ${dead.deliveries} deliveries`;
    const changed = await deps.tasks.fail(msg.data.taskId, reason, "system:queue", "queue");
    deps.metrics?.deadLetters.inc({ pool: dead.pool });
    deps.log.warn({ taskId: msg.data.taskId, deliveries: dead.deliveries, changed }, "task dead-lettered");
  });
}
