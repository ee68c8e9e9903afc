import type { Telegram } from "telegraf";
import { createTelegramApi } from "../notify/telegram-client.ts";
import type { Config } from "../config/load.ts";
import type { Store } from "../store/db.ts";
import type { Logger } from "../shared/logger.ts";
import type { TaskQueue } from "../bus/port.ts";
import type { ApprovalService } from "./service.ts";
import { createTelegramChannel } from "./telegram.ts";
import { createTelegramPoller } from "./telegram-polling.ts";
import { registerTelegramWebhook, TELEGRAM_WEBHOOK_PATH, type TelegramWebhookDeps } from "./telegram-webhook.ts";

// The Telegram channel as the control plane runs it: the Bot API client (telegraf's `Telegram`,
// pointed at TELEGRAM_API_ROOT), the channel, and its transport — the webhook route plus
// setWebhook when PUBLIC_URL is https, else the leased long-poller.

export type TelegramChannelRuntime = {
  /** For buildHttpApp: the webhook route, in webhook mode. */
  http?: TelegramWebhookDeps;
  /** Starts the transport (after the HTTP server listens): setWebhook, or the poller. */
  start(): void;
  stop(): Promise<void>;
};

export function createTelegramRuntime(deps: {
  config: Config;
  store: Store;
  log: Logger;
  now: () => number;
  approvals: Pick<ApprovalService, "approve" | "reject" | "merge" | "rebuild">;
  queue: Pick<TaskQueue, "kind" | "health">;
  kick: () => void;
  api?: Telegram;
}): TelegramChannelRuntime | undefined {
  const telegram = deps.config.telegram;
  if (!telegram) return undefined;
  const api = deps.api ?? createTelegramApi(telegram);
  const { store, log, now } = deps;
  const channel = createTelegramChannel({
    store,
    log,
    now,
    telegram,
    api,
    approvals: deps.approvals,
    queue: deps.queue,
    kick: deps.kick,
  });
  if (telegram.mode === "webhook") {
    const secret = telegram.webhookSecret!;
    let registration: ReturnType<typeof registerTelegramWebhook> | undefined;
    return {
      http: { channel, secret },
      start() {
        registration = registerTelegramWebhook({
          api,
          log,
          url: `${deps.config.publicUrl}${TELEGRAM_WEBHOOK_PATH}`,
          secret,
        });
      },
      async stop() {
        registration?.stop();
      },
    };
  }
  const poller = createTelegramPoller({
    store,
    log,
    now,
    api,
    channel,
    token: telegram.token,
    owner: `control-plane:${deps.config.runner.id}`,
  });
  return { start: () => poller.start(), stop: () => poller.stop() };
}
