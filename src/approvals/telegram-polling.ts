import type { Telegram } from "telegraf";
import type { Update } from "telegraf/types";
import type { Store } from "../store/db.ts";
import type { Logger } from "../shared/logger.ts";
import { backoffMs } from "../shared/backoff.ts";
import { errorMessage, isAppError } from "../shared/errors.ts";
import { insertIfAbsent, upsert } from "../store/sql.ts";
import type { TelegramChannel } from "./telegram.ts";

// Long polling, for a control plane Telegram cannot reach (PUBLIC_URL not https). Telegram answers
// getUpdates to one caller at a time (a second gets 409), so exactly one replica polls: the one
// holding the `telegram.poller.<bot>` lease, a settings row taken and renewed with a conditional
// update (owner = this replica, or the previous owner's lease ran out). The next offset is kept in
// the database (`telegram.offset.<bot>`), saved after each update, so a replica that takes over
// continues where the last one stopped; an update handled but not yet past the saved offset is
// recognised by the channel's de-duplication and changes nothing.

export const ALLOWED_UPDATES = ["callback_query", "message"] as const;

export type TelegramPollerDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  api: Telegram;
  channel: Pick<TelegramChannel, "handleUpdate">;
  /** The bot token (its numeric prefix names the lease and the offset). */
  token: string;
  /** This replica, as the lease's owner. */
  owner: string;
  /** Lease length (renewed before each poll and each update); longer than a poll. */
  leaseMs?: number;
  /** getUpdates' long-poll timeout in seconds. */
  pollTimeoutSec?: number;
  /**
   * Pause after an empty answer. Telegram's long poll already waited `pollTimeoutSec`; this keeps
   * a server that answers at once (a misconfigured API root) from spinning the loop.
   */
  idleMs?: number;
  /** Retry delays after a failed poll (backoffMs); a 429 waits its retry_after instead. */
  retry?: { baseMs: number; maxMs: number };
};

export function createTelegramPoller(deps: TelegramPollerDeps) {
  const { store } = deps;
  const log = deps.log.child({ component: "telegram-poller" });
  const bot = deps.token.split(":")[0]!;
  const LEASE = `telegram.poller.${bot}`;
  const OFFSET = `telegram.offset.${bot}`;
  const leaseMs = deps.leaseMs ?? 60_000;
  const timeout = deps.pollTimeoutSec ?? 25;
  const retry = deps.retry ?? { baseMs: 1000, maxMs: 60_000 };
  const idleMs = deps.idleMs ?? 250;
  let running = false;
  let holding = false;
  let abort = new AbortController();
  let loop: Promise<void> | undefined;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      abort.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
    });

  /** Takes or renews the lease; false while another replica holds it. */
  async function takeLease(): Promise<boolean> {
    const now = deps.now();
    const value = JSON.stringify({ owner: deps.owner });
    const res = await store.db
      .updateTable("settings")
      .set({ value, updated_by: deps.owner, updated_at: now })
      .where("key", "=", LEASE)
      .where((eb) => eb.or([eb("updated_by", "=", deps.owner), eb("updated_at", "<", now - leaseMs)]))
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) > 0) return true;
    return insertIfAbsent(store.db, store.dialect, "settings", {
      key: LEASE,
      value,
      updated_by: deps.owner,
      updated_at: now,
    });
  }

  async function releaseLease(): Promise<void> {
    await store.db
      .updateTable("settings")
      .set({ updated_at: 0 })
      .where("key", "=", LEASE)
      .where("updated_by", "=", deps.owner)
      .execute();
  }

  async function readOffset(): Promise<number> {
    const row = await store.db.selectFrom("settings").select("value").where("key", "=", OFFSET).executeTakeFirst();
    const v = row ? (JSON.parse(row.value) as { offset?: unknown }).offset : undefined;
    return typeof v === "number" ? v : 0;
  }

  async function saveOffset(offset: number): Promise<void> {
    const now = deps.now();
    const value = JSON.stringify({ offset });
    const set = { value, updated_by: deps.owner, updated_at: now };
    await upsert(store.db, store.dialect, "settings", { key: OFFSET, ...set }, "key", set);
  }

  /** One round: the lease, then one getUpdates and its updates. Returns how many were handled. */
  async function pollOnce(): Promise<number> {
    if (!(await takeLease())) {
      if (holding) log.info("another replica polls Telegram now");
      holding = false;
      return -1;
    }
    if (!holding) {
      // A webhook left registered (an earlier https PUBLIC_URL) makes getUpdates fail with 409.
      await deps.api.deleteWebhook({ drop_pending_updates: false });
      holding = true;
      log.info({ owner: deps.owner }, "polling Telegram for updates");
    }
    const offset = await readOffset();
    const updates = (await deps.api.callApi(
      "getUpdates",
      { offset, timeout, allowed_updates: [...ALLOWED_UPDATES] },
      // telegraf types the signal as the abort-controller shim's; node-fetch takes Node's own.
      { signal: abort.signal as unknown as NonNullable<Parameters<Telegram["callApi"]>[2]>["signal"] },
    )) as Update[];
    let n = 0;
    for (const u of updates) {
      if (!(await takeLease())) break;
      try {
        await deps.channel.handleUpdate(u);
      } catch (err) {
        // A malformed update is skipped; anything else (the database is down) is retried from here.
        if (!isAppError(err) || err.kind !== "invalid") throw err;
        log.warn({ updateId: u.update_id, err: { message: err.message } }, "Telegram update skipped");
      }
      await saveOffset(u.update_id + 1);
      n += 1;
    }
    return n;
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      try {
        const n = await pollOnce();
        failures = 0;
        if (n === -1) await sleep(Math.max(50, Math.floor(leaseMs / 3)));
        else if (n === 0) await sleep(idleMs);
      } catch (err) {
        if (!running) break;
        failures += 1;
        const retryAfter = (err as { parameters?: { retry_after?: number } }).parameters?.retry_after;
        const wait = typeof retryAfter === "number" ? retryAfter * 1000 : backoffMs(failures, retry);
        // 409: a webhook is set again, or another poller without our lease: delete it on the next round.
        if ((err as { code?: unknown }).code === 409) holding = false;
        log.warn({ err: { message: errorMessage(err) }, waitMs: wait }, "polling Telegram failed; retrying");
        await sleep(wait);
      }
    }
  }

  return {
    pollOnce,
    start() {
      if (running) return;
      running = true;
      abort = new AbortController();
      loop = run();
    },
    /** Stops polling and gives the lease up, so another replica takes over at once. */
    async stop() {
      if (!running) return;
      running = false;
      abort.abort();
      await loop;
      if (holding) await releaseLease().catch(() => {});
      holding = false;
    },
    /** Whether this replica holds the lease (the last round took it). */
    get polling() {
      return holding;
    },
  };
}

export type TelegramPoller = ReturnType<typeof createTelegramPoller>;
