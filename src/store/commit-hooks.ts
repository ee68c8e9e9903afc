import type { DatabaseConnection, Dialect, Driver, Kysely } from "kysely";
import type { DB, IncidentRow } from "./schema.ts";
import type { Executor } from "./sql.ts";

// Timeline events as they become true: an event appended inside a transaction is held on that
// transaction's connection and handed to the store's listeners right after its COMMIT succeeds; a
// ROLLBACK (or a failed COMMIT) drops it. Listeners (the lifecycle log) therefore never report a
// step that did not happen, and report each committed one once, on the replica that committed it.
// Outbox rows the same way: a transaction that added one tells the relay when it commits, so the
// message goes out at once whichever code path queued it.

export type CommittedEvent = {
  id: string;
  type: string;
  incidentId: string | null;
  taskId: string | null;
  actor: string;
  channel: string;
  reason: string | null;
  data: Record<string, unknown>;
  occurredAt: number;
  /** The incident as the event leaves it, when its writer had it (a transition, an opening); never stored. */
  incident?: IncidentRow;
};

export type CommitListener = (events: CommittedEvent[]) => void;

export type CommitHooks = {
  /** Calls `listener` with the events of each committed transaction; returns the unsubscribe. */
  onEventsCommitted(listener: CommitListener): () => void;
  /** Calls `listener` after each committed transaction (or statement) that added outbox rows. */
  onOutboxCommitted(listener: () => void): () => void;
};

type Hub = { listeners: Set<CommitListener>; outbox: Set<() => void> };

/** What a transaction in progress has to report when it commits. */
type Pending = { events: CommittedEvent[]; outbox: boolean };
const pending = new WeakMap<DatabaseConnection, Pending>();
const hubOfConnection = new WeakMap<DatabaseConnection, Hub>();
const hubOfRoot = new WeakMap<Kysely<DB>, Hub>();

/** A dialect whose driver reports each committed transaction's events to the listeners of `hooks`. */
export function withCommitHooks(dialect: Dialect): {
  dialect: Dialect;
  hooks: CommitHooks;
  attach(db: Kysely<DB>): void;
} {
  const hub: Hub = { listeners: new Set(), outbox: new Set() };
  return {
    dialect: {
      createAdapter: () => dialect.createAdapter(),
      createIntrospector: (db) => dialect.createIntrospector(db),
      createQueryCompiler: () => dialect.createQueryCompiler(),
      createDriver: () => hookedDriver(dialect.createDriver(), hub),
    },
    hooks: {
      onEventsCommitted(listener) {
        hub.listeners.add(listener);
        return () => void hub.listeners.delete(listener);
      },
      onOutboxCommitted(listener) {
        hub.outbox.add(listener);
        return () => void hub.outbox.delete(listener);
      },
    },
    // Statements outside a transaction commit as they run: their events go out at once.
    attach: (db) => void hubOfRoot.set(db, hub),
  };
}

function hookedDriver(inner: Driver, hub: Hub): Driver {
  return {
    init: () => inner.init(),
    acquireConnection: () => inner.acquireConnection(),
    releaseConnection: (c) => inner.releaseConnection(c),
    destroy: () => inner.destroy(),
    async beginTransaction(c, settings) {
      pending.delete(c);
      hubOfConnection.set(c, hub);
      await inner.beginTransaction(c, settings);
    },
    async commitTransaction(c) {
      const held = pending.get(c);
      pending.delete(c);
      await inner.commitTransaction(c);
      if (held?.events.length) emit(hub, held.events);
      if (held?.outbox) emitOutbox(hub);
    },
    async rollbackTransaction(c) {
      pending.delete(c);
      await inner.rollbackTransaction(c);
    },
    ...(inner.savepoint && { savepoint: (c, name, compile) => inner.savepoint!(c, name, compile) }),
    ...(inner.rollbackToSavepoint && {
      rollbackToSavepoint: (c, name, compile) => inner.rollbackToSavepoint!(c, name, compile),
    }),
    ...(inner.releaseSavepoint && {
      releaseSavepoint: (c, name, compile) => inner.releaseSavepoint!(c, name, compile),
    }),
  };
}

function emit(hub: Hub, events: CommittedEvent[]): void {
  for (const listener of hub.listeners) notify(() => listener(events));
}

function emitOutbox(hub: Hub): void {
  for (const listener of hub.outbox) notify(listener);
}

function notify(call: () => void): void {
  try {
    call();
  } catch (err) {
    // The transaction committed: an observer's failure must not turn it into an error.
    process.emitWarning(err instanceof Error ? err : String(err), "CommitListenerWarning");
  }
}

/** What the transaction on `c` holds for its commit, made on first use. */
function held(c: DatabaseConnection): Pending {
  let p = pending.get(c);
  if (!p) pending.set(c, (p = { events: [], outbox: false }));
  return p;
}

/** Called after the event's row is written: reported when (if) the row's transaction commits. */
export async function noteCommitted(db: Executor, event: CommittedEvent): Promise<void> {
  if (!db.isTransaction) {
    const hub = hubOfRoot.get(db as Kysely<DB>);
    if (hub && hub.listeners.size > 0) emit(hub, [event]);
    return;
  }
  await db.getExecutor().provideConnection(async (c) => {
    const hub = hubOfConnection.get(c);
    if (hub && hub.listeners.size > 0) held(c).events.push(event);
  });
}

/** Called after an outbox row is written: the relay is told when (if) the row's transaction commits. */
export async function noteOutbox(db: Executor): Promise<void> {
  if (!db.isTransaction) {
    const hub = hubOfRoot.get(db as Kysely<DB>);
    if (hub) emitOutbox(hub);
    return;
  }
  await db.getExecutor().provideConnection(async (c) => {
    const hub = hubOfConnection.get(c);
    if (hub && hub.outbox.size > 0) held(c).outbox = true;
  });
}
