import type { Config } from "../config/load.ts";
import type { TaskQueue } from "../bus/port.ts";
import type { Metrics } from "./metrics.ts";
import type { Store } from "../store/db.ts";
import type { TaskService } from "../tasks/service.ts";
import type { Logger } from "./logger.ts";

/** Everything a control-plane component may depend on; each takes the slice it needs (Pick). */
export type Deps = {
  config: Config;
  log: Logger;
  store: Store;
  queue: TaskQueue;
  metrics: Metrics;
  tasks: TaskService;
  now: () => number;
};
