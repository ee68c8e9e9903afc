import type { FastifyInstance } from "fastify";
import type { Telegram } from "telegraf";
import type { Logger } from "../shared/logger.ts";
import { AppError, errorMessage } from "../shared/errors.ts";
import { backoffMs } from "../shared/backoff.ts";
import { safeEqual } from "../shared/secrets.ts";
import type { TelegramChannel } from "./telegram.ts";
import { ALLOWED_UPDATES } from "./telegram-polling.ts";

// Webhook mode (PUBLIC_URL is https): Telegram POSTs each update to /webhooks/telegram with the
// secret given to setWebhook in X-Telegram-Bot-Api-Secret-Token. Without it, or with another
// one, the answer is 401 and nothing is read. An update is answered 2xx only once it is handled;
// a failure worth retrying (503) makes Telegram send it again, and the channel's de-duplication
// keeps a resent update from acting twice.

export const TELEGRAM_WEBHOOK_PATH = "/webhooks/telegram";

export type TelegramWebhookDeps = { channel: Pick<TelegramChannel, "handleUpdate">; secret: string };

export async function telegramWebhookRoutes(app: FastifyInstance, deps: TelegramWebhookDeps) {
  app.post(TELEGRAM_WEBHOOK_PATH, { bodyLimit: 1_048_576 }, async (req, reply) => {
    const given = req.headers["x-telegram-bot-api-secret-token"];
    if (typeof given !== "string" || !safeEqual(given, deps.secret)) {
      throw new AppError("unauthorized", "telegram.bad_secret", "missing or wrong X-Telegram-Bot-Api-Secret-Token");
    }
    const outcome = await deps.channel.handleUpdate(req.body);
    return reply.status(200).send({ ok: true, outcome });
  });
}

/**
 * Registers `url` with Telegram (setWebhook with the secret and the update kinds Pitcrew reads),
 * retrying in the background until Telegram accepts it; every replica does it at start (it is
 * idempotent). Returns a stop function.
 */
export type WebhookRegistration = { done: Promise<boolean>; stop: () => void };

export function registerTelegramWebhook(deps: {
  api: Telegram;
  log: Logger;
  url: string;
  secret: string;
  retry?: { baseMs: number; maxMs: number };
}): WebhookRegistration {
  const log = deps.log.child({ component: "telegram" });
  const retry = deps.retry ?? { baseMs: 2000, maxMs: 300_000 };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: () => void = () => {};
  const done = (async () => {
    for (let attempt = 1; !stopped; attempt += 1) {
      try {
        await deps.api.setWebhook(deps.url, { secret_token: deps.secret, allowed_updates: [...ALLOWED_UPDATES] });
        log.info({ url: deps.url }, "Telegram webhook registered");
        return true;
      } catch (err) {
        const retryAfter = (err as { parameters?: { retry_after?: number } }).parameters?.retry_after;
        const wait = typeof retryAfter === "number" ? retryAfter * 1000 : backoffMs(attempt, retry);
        log.warn(
          { err: { message: errorMessage(err) }, waitMs: wait },
          "could not register the Telegram webhook; retrying",
        );
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, wait);
        });
      }
    }
    return false;
  })();
  return {
    done,
    stop() {
      stopped = true;
      clearTimeout(timer);
      wake();
    },
  };
}
