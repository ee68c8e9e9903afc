import type { Config } from "../config/load.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Store } from "../store/db.ts";
import { createDeliverer, type DelivererSettings, type Sender } from "./deliverer.ts";
import { createRateLimiter } from "./rate-limit.ts";
import { TELEGRAM } from "./requests.ts";
import { createTelegramClient } from "./telegram-client.ts";
import { createTelegramSender } from "./telegram-sender.ts";

// Durable deliveries as the control plane runs them: the deliverer with a Telegram sender when
// TELEGRAM_BOT_TOKEN is set, and the senders of other channels (signed webhooks) it is given.
// Without Telegram the deliverer still runs, and drops the notices the database keeps asking for,
// so they neither pile up nor go out stale once Telegram is configured.

export type NoticeDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  owner: string;
  settings?: Partial<DelivererSettings>;
  metrics?: Pick<Metrics, "deliveries">;
};

export function createNotices(
  config: Pick<Config, "telegram" | "notify">,
  deps: NoticeDeps,
  others: Record<string, Sender> = {},
) {
  const senders: Record<string, Sender> = { ...others };
  if (config.telegram) {
    senders[TELEGRAM] = createTelegramSender({
      store: deps.store,
      telegram: config.telegram,
      minSeverity: config.notify.minSeverity,
      client: createTelegramClient({ token: config.telegram.token, apiRoot: config.telegram.apiRoot }),
      limiter: createRateLimiter(),
    });
  }
  return createDeliverer({ ...deps, senders });
}
