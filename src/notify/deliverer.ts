import { appendEvent } from "../events/repo.ts";
import { backoffMs } from "../shared/backoff.ts";
import { errorMessage } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Store } from "../store/db.ts";
import { holdLease, releaseLease } from "./lease.ts";
import {
  claimAttempt,
  dropUnsendable,
  dueDeliveries,
  finishDelivery,
  nextDueAt,
  postponeDeliveries,
  pruneDeliveries,
  skipDeliveries,
  type DeliveryRow,
} from "./repo.ts";
import { onDeliveryRequested } from "./requests.ts";

// The deliverer: one loop, on whichever replica holds the lease, sends due delivery rows through
// the sender of their channel and records the outcome. Nothing waits on it: the change that asked
// for a delivery committed long before, so an outside service being down only delays messages.
// A failed send is retried with backoff (and the channel pauses, so an outage costs one probe per
// backoff step rather than one failed call per row), then the row is `dead` with an event. A row
// whose incident changed while it was being sent stays pending and is sent again, rendered anew.
//
// A sender with an attempt schedule (webhooks) has each attempt claimed before it is sent: one
// conditional update counts the attempt and moves the row's next attempt past the time a send can
// take, so exactly one replica makes each attempt even if the lease changed hands meanwhile (the
// lease is renewed between rows too); after the last attempt of the schedule the row is dead.

/** What a sender did with a row. */
export type DeliveryOutcome =
  | { status: "sent"; target: string; httpStatus?: number }
  /** Nothing to send (below the severity threshold, decided before it was ever shown…). */
  | { status: "skipped"; why: string }
  /** Not now (a rate limit, a 429's retry_after): no attempt is counted. `target`: where it goes. */
  | { status: "wait"; until: number; why: string; target?: string }
  /** Failed in a way that may pass; `channelDown` pauses the channel's other rows too. */
  | { status: "retry"; error: string; channelDown?: boolean; httpStatus?: number }
  | { status: "dead"; error: string; incidentId?: string; httpStatus?: number };

export type Sender = {
  deliver(row: DeliveryRow, now: number): Promise<DeliveryOutcome>;
  /** 0 when a message to `target` may go now, else when it may (rate limits); lets waiting rows wait without work. */
  readyAt?(target: string, now: number): number;
  /**
   * A fixed schedule instead of the deliverer's backoff: the wait after each failed attempt, then
   * dead. Each attempt is claimed before it is sent and may take up to `claimMs`.
   */
  attempts?: { delaysMs: number[]; claimMs: number };
  /** The timeline event of a row given up (default notice.dead). */
  deadEvent?: string;
  /**
   * The rows of a pass this sender would skip without sending anything, and why (a webhook event
   * no target subscribes to): closed together in one update, unclaimed, instead of one at a time.
   */
  unwanted?(rows: DeliveryRow[], now: number): Promise<Map<string, string>>;
};

export type DelivererSettings = {
  leaseMs: number;
  pollMs: number;
  batch: number;
  maxAttempts: number;
  backoff: { baseMs: number; maxMs: number };
  keepDoneMs: number;
  keepDeadMs: number;
  pruneEveryMs: number;
};

export const DELIVERER_DEFAULTS: DelivererSettings = {
  leaseMs: 30_000,
  pollMs: 2000,
  batch: 50,
  // With the backoff below, about 3 hours of failures before a message is given up.
  maxAttempts: 25,
  backoff: { baseMs: 2000, maxMs: 600_000 },
  keepDoneMs: 7 * 86_400_000,
  keepDeadMs: 30 * 86_400_000,
  pruneEveryMs: 600_000,
};

export type DelivererDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  /** This replica, as the lease names it. */
  owner: string;
  /** By channel; rows of a channel without a sender are dropped (its service is not configured). */
  senders: Record<string, Sender>;
  settings?: Partial<DelivererSettings>;
  metrics?: Pick<Metrics, "deliveries">;
};

export type RunResult = {
  leader: boolean;
  sent: number;
  retried: number;
  dead: number;
  waiting: number;
  skipped: number;
  dropped: number;
  nextAt: number | null;
  more: boolean;
};

export const DELIVERER_LEASE = "notify.deliverer";
const ACTOR = { actor: "pitcrew:notify", channel: "engine" };

export function createDeliverer(deps: DelivererDeps) {
  const { store } = deps;
  const s: DelivererSettings = { ...DELIVERER_DEFAULTS, ...deps.settings };
  const log = deps.log.child({ component: "notify" });
  const channels = Object.keys(deps.senders);
  const paused = new Map<string, { until: number; failures: number }>();
  let lastPrune = Number.NEGATIVE_INFINITY;

  const count = (row: DeliveryRow, outcome: "sent" | "retried" | "dead") =>
    deps.metrics?.deliveries.inc({ channel: row.channel, outcome });

  async function record(row: DeliveryRow, out: DeliveryOutcome, r: RunResult): Promise<void> {
    const now = deps.now();
    switch (out.status) {
      case "sent":
      case "skipped": {
        paused.delete(row.channel);
        r[out.status === "sent" ? "sent" : "skipped"] += 1;
        const closed = await finishDelivery(
          store.db,
          row,
          out.status,
          now,
          out.status === "sent" ? { target: out.target, lastStatus: out.httpStatus } : { error: out.why },
        );
        // Changed while it was being sent: send again, rendered from the new state.
        if (!closed) await postponeDeliveries(store.db, [row.id], now, now);
        else if (out.status === "sent") count(row, "sent");
        return;
      }
      case "wait":
        r.waiting += 1;
        await postponeDeliveries(store.db, [row.id], out.until, now, { target: out.target });
        return;
      case "retry": {
        const schedule = deps.senders[row.channel]?.attempts;
        if (schedule) {
          // Claimed: `row.attempts` already counts this attempt.
          const n = Number(row.attempts);
          if (n > schedule.delaysMs.length)
            return giveUp(row, `gave up after ${n} attempts: ${out.error}`, undefined, r, n, out.httpStatus);
          r.retried += 1;
          log.warn(
            { deliveryId: row.id, channel: row.channel, kind: row.kind, attempts: n, error: out.error },
            "delivery failed; will retry",
          );
          await postponeDeliveries(store.db, [row.id], now + schedule.delaysMs[n - 1]!, now, {
            error: out.error,
            lastStatus: out.httpStatus,
          });
          count(row, "retried");
          return;
        }
        const attempts = Number(row.attempts) + 1;
        if (out.channelDown) {
          const p = paused.get(row.channel);
          const failures = (p?.failures ?? 0) + 1;
          paused.set(row.channel, { until: now + backoffMs(failures, s.backoff), failures });
        }
        if (attempts < s.maxAttempts) {
          r.retried += 1;
          log.warn(
            { deliveryId: row.id, channel: row.channel, kind: row.kind, attempts, error: out.error },
            "delivery failed; will retry",
          );
          await postponeDeliveries(store.db, [row.id], now + backoffMs(attempts, s.backoff), now, {
            attempts,
            error: out.error,
          });
          count(row, "retried");
          return;
        }
        return giveUp(row, `gave up after ${attempts} attempts: ${out.error}`, undefined, r, attempts);
      }
      case "dead":
        return giveUp(
          row,
          out.error,
          out.incidentId,
          r,
          deps.senders[row.channel]?.attempts ? Number(row.attempts) : Number(row.attempts) + 1,
          out.httpStatus,
        );
    }
  }

  async function giveUp(
    row: DeliveryRow,
    error: string,
    incidentId: string | undefined,
    r: RunResult,
    attempts: number,
    lastStatus?: number,
  ): Promise<void> {
    r.dead += 1;
    log.error({ deliveryId: row.id, channel: row.channel, kind: row.kind, ref: row.ref, error }, "delivery given up");
    const dead = await store.db.transaction().execute(async (trx) => {
      const now = deps.now();
      if (!(await finishDelivery(trx, row, "dead", now, { error, attempts, lastStatus }))) return false;
      await appendEvent(
        trx,
        store.dialect,
        {
          type: deps.senders[row.channel]?.deadEvent ?? "notice.dead",
          incidentId: incidentId ?? row.incident_id ?? (row.kind.startsWith("incident.") ? row.ref : null),
          ...ACTOR,
          reason: `${row.channel} ${row.kind} not delivered: ${error}`.slice(0, 1000),
          data: {
            deliveryId: row.id,
            channel: row.channel,
            kind: row.kind,
            ref: row.ref,
            target: row.target,
            attempts,
            ...(lastStatus !== undefined && { status: lastStatus }),
          },
          occurredAt: now,
        },
        now,
      );
      return true;
    });
    if (dead) count(row, "dead");
  }

  /** One pass: hold the lease, send what is due, record the outcomes. */
  async function runOnce(): Promise<RunResult> {
    const r: RunResult = {
      leader: false,
      sent: 0,
      retried: 0,
      dead: 0,
      waiting: 0,
      skipped: 0,
      dropped: 0,
      nextAt: null,
      more: false,
    };
    const now = deps.now();
    r.leader = await holdLease(store.db, store.dialect, DELIVERER_LEASE, deps.owner, now, s.leaseMs);
    // Not the sender: check back in time to take over from one that stopped renewing.
    if (!r.leader) return { ...r, nextAt: now + s.leaseMs / 2 };
    r.dropped = await dropUnsendable(store.db, channels);
    if (now - lastPrune >= s.pruneEveryMs) {
      lastPrune = now;
      await pruneDeliveries(store.db, now, { doneMs: s.keepDoneMs, deadMs: s.keepDeadMs });
    }
    const down = () => [...paused].filter(([, p]) => p.until > deps.now()).map(([c]) => c);
    const due = await dueDeliveries(store.db, now, s.batch, down());
    const rows = await skipUnwanted(due, r);
    // Rows already routed to a target that has no free slot wait for it, in one update per slot time.
    const held = new Map<number, string[]>();
    let renewedAt = now;
    for (let row of rows) {
      if (down().includes(row.channel)) continue;
      // A long pass keeps the lease; one that lost it stops (another replica sends from here).
      if (deps.now() - renewedAt > s.leaseMs / 4) {
        renewedAt = deps.now();
        if (!(await holdLease(store.db, store.dialect, DELIVERER_LEASE, deps.owner, renewedAt, s.leaseMs))) break;
      }
      const sender = deps.senders[row.channel]!;
      const readyAt = row.target && sender.readyAt ? sender.readyAt(row.target, deps.now()) : 0;
      if (readyAt > 0) {
        held.set(readyAt, [...(held.get(readyAt) ?? []), row.id]);
        r.waiting += 1;
        continue;
      }
      if (sender.attempts) {
        // Every attempt of the schedule was made; the last one never reported back (its replica stopped).
        if (Number(row.attempts) > sender.attempts.delaysMs.length) {
          await giveUp(
            row,
            `gave up after ${Number(row.attempts)} attempts; the last one was interrupted${row.last_error ? ` (before it: ${row.last_error})` : ""}`,
            undefined,
            r,
            Number(row.attempts),
          );
          continue;
        }
        const claimed = await claimAttempt(store.db, row, deps.now(), sender.attempts);
        if (!claimed) continue;
        row = claimed;
      }
      let out: DeliveryOutcome;
      try {
        out = await sender.deliver(row, deps.now());
      } catch (err) {
        // Our side failed (the database, a bug): retry like an outage of the service would.
        out = { status: "retry", error: errorMessage(err).slice(0, 500) };
      }
      await record(row, out, r);
    }
    for (const [at, ids] of held) await postponeDeliveries(store.db, ids, at, deps.now());
    const skip = down();
    const next = await nextDueAt(store.db, skip);
    const resume = skip.map((c) => paused.get(c)!.until);
    const candidates = [...(next === null ? [] : [next]), ...resume];
    r.nextAt = candidates.length ? Math.min(...candidates) : null;
    r.more = due.length === s.batch;
    return r;
  }

  /** Closes the rows their senders do not want (one update per reason); returns the others. */
  async function skipUnwanted(rows: DeliveryRow[], r: RunResult): Promise<DeliveryRow[]> {
    const skip = new Map<string, DeliveryRow[]>();
    const unwantedIds = new Set<string>();
    for (const channel of new Set(rows.map((row) => row.channel))) {
      const sender = deps.senders[channel];
      if (!sender?.unwanted) continue;
      // When the sender cannot tell (its store failed), its rows go the usual way, one at a time.
      const whys = await sender
        .unwanted(
          rows.filter((row) => row.channel === channel),
          deps.now(),
        )
        .catch(() => new Map<string, string>());
      for (const row of rows) {
        const why = whys.get(row.id);
        if (why === undefined) continue;
        skip.set(why, [...(skip.get(why) ?? []), row]);
        unwantedIds.add(row.id);
      }
    }
    for (const [why, list] of skip) r.skipped += await skipDeliveries(store.db, list, why, deps.now());
    // A row that changed meanwhile stays pending for the next pass; the others go through the senders.
    return rows.filter((row) => !unwantedIds.has(row.id));
  }

  let stopped = true;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let kickTimer: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;

  /** Runs the loop soon: the request may still be in a transaction that commits in a moment. */
  function kick(): void {
    if (stopped || kickTimer) return;
    kickTimer = setTimeout(() => {
      kickTimer = undefined;
      wake?.();
    }, 50);
  }

  async function run(): Promise<void> {
    while (!stopped) {
      let wait = s.pollMs;
      try {
        const r = await runOnce();
        if (r.more) wait = 0;
        else if (r.nextAt !== null) wait = Math.min(s.pollMs, Math.max(0, r.nextAt - deps.now()));
      } catch (err) {
        log.warn({ err: { message: errorMessage(err) } }, "delivery pass failed");
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(wait, 10));
        wake = () => (clearTimeout(t), resolve());
      });
      wake = undefined;
    }
  }

  return {
    runOnce,
    kick,
    start() {
      if (!stopped) return;
      stopped = false;
      unsubscribe = onDeliveryRequested(kick);
      loop = run();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      unsubscribe?.();
      clearTimeout(kickTimer);
      kickTimer = undefined;
      wake?.();
      await loop;
      await releaseLease(store.db, DELIVERER_LEASE, deps.owner).catch(() => undefined);
    },
  };
}

export type Deliverer = ReturnType<typeof createDeliverer>;
