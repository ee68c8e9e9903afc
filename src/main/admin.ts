import { hostname, userInfo } from "node:os";
import type { Config } from "../config/load.ts";
import type { Logger } from "../shared/logger.ts";
import { migrateWithRetry, openStore } from "../store/db.ts";
import { setPause, getPause } from "../system/settings.ts";
import { requeueDetected } from "../incidents/analysis.ts";

// One-off operator commands that act on the shared database, so they work the same against an
// embedded SQLite file or the MySQL behind a fleet of control planes.

const operator = () => `cli:${userInfo().username}@${hostname()}`;

export async function migrateCommand(config: Config, log: Logger): Promise<string> {
  const store = openStore(config.database);
  try {
    const applied = await migrateWithRetry(store, log, 1);
    return applied.length ? `applied: ${applied.join(", ")}` : "database is up to date";
  } finally {
    await store.close();
  }
}

export async function pauseCommand(config: Config, log: Logger, paused: boolean, reason?: string): Promise<string> {
  const store = openStore(config.database);
  try {
    await migrateWithRetry(store, log, 1);
    const before = await getPause(store.db);
    const now = Date.now();
    await setPause(store, paused, { actor: operator(), channel: "cli", reason }, now);
    if (paused)
      return before.paused
        ? "automation was already paused; reason updated"
        : "automation paused: new incidents are recorded but not analysed or fixed";
    const requeued = await requeueDetected(store, now, { actor: operator(), channel: "cli" });
    return `automation resumed; ${requeued} waiting incident(s) queued for analysis`;
  } finally {
    await store.close();
  }
}
