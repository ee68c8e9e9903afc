import {
  type CompiledQuery,
  createQueryId,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  InsertQueryNode,
  type OperationNode,
  type QueryCompiler,
  type QueryResult,
  ValuesNode,
} from "kysely";
import type { Executor } from "./sql.ts";

// Many one-row INSERTs become a few multi-row ones. A transaction that opts in (deferInserts) has
// its one-row INSERTs into the named tables held back instead of sent; they are written, one
// INSERT per table and statement shape, in the order they were asked for, just before the next
// statement of any other kind and before COMMIT. Every read in the transaction therefore sees
// them, and the committed rows are the same as if each had been sent when asked. An opening alert
// storm asks for six such rows per alert (its events, their notice and webhook requests, its
// analysis task and its outbox message): on MySQL each would be a round trip of its own, so a
// 10,000-alert group was 60,000 round trips before its COMMIT.
//
// What changes for the caller: such an INSERT reports one row at once, and an error it would have
// raised (a duplicate key) comes from the statement that writes it, which fails the transaction.
// Opt in only where every held row is new (fresh ids) and nothing catches an INSERT's error to
// carry on: the alert intake.

/** Bound parameters per written statement: under SQLite's 32,766 and MySQL's 65,535. */
const MAX_PARAMETERS = 30_000;

type Group = { node: InsertQueryNode; rows: OperationNode[]; parameters: number };

class DeferringConnection implements DatabaseConnection {
  tables: ReadonlySet<string> | null = null;
  private readonly groups = new Map<string, Group>();

  constructor(
    readonly inner: DatabaseConnection,
    private readonly compiler: QueryCompiler,
  ) {}

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    if (this.hold(compiled)) return { rows: [], numAffectedRows: 1n };
    // Every statement of every transaction passes here: no extra await unless something is held.
    if (this.groups.size > 0) await this.flush();
    return this.inner.executeQuery<R>(compiled);
  }

  async *streamQuery<R>(compiled: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    await this.flush();
    yield* this.inner.streamQuery<R>(compiled, chunkSize);
  }

  /** Holds a one-row INSERT into a deferred table; false for anything else. */
  private hold(compiled: CompiledQuery): boolean {
    const node = compiled.query;
    if (this.tables === null || !InsertQueryNode.is(node)) return false;
    const table = node.into?.table.identifier.name;
    const values = node.values;
    if (table === undefined || !this.tables.has(table) || node.returning || node.replace) return false;
    if (node.with || node.endModifiers || node.top || node.output) return false;
    if (!values || !ValuesNode.is(values) || values.values.length !== 1) return false;
    // The statement without its row: its SQL text (table, columns, clauses), and the values bound
    // in an ON CONFLICT / ON DUPLICATE KEY UPDATE clause, which the text shows only as placeholders. Rows
    // of the same shape go into one INSERT.
    let shape = compiled.sql;
    try {
      if (node.onConflict) shape += JSON.stringify(node.onConflict);
      if (node.onDuplicateKey) shape += JSON.stringify(node.onDuplicateKey);
    } catch {
      return false; // a value JSON cannot write (a bigint): sent as it is
    }
    let group = this.groups.get(shape);
    if (!group) {
      group = { node, rows: [], parameters: 0 };
      this.groups.set(shape, group);
    }
    if (group.parameters + compiled.parameters.length > MAX_PARAMETERS) return false;
    group.rows.push(values.values[0]!);
    group.parameters += compiled.parameters.length;
    return true;
  }

  /** Writes what is held, one INSERT per shape, in the order the shapes were first asked for. */
  async flush(): Promise<void> {
    if (this.groups.size === 0) return;
    const groups = [...this.groups.values()];
    this.groups.clear();
    for (const g of groups) {
      const node = InsertQueryNode.cloneWith(g.node, { values: ValuesNode.create(g.rows as never) });
      await this.inner.executeQuery(this.compiler.compileQuery(node, createQueryId()));
    }
  }

  /** Forgets what is held (the transaction began or rolled back) and stops holding. */
  reset(): void {
    this.groups.clear();
    this.tables = null;
  }
}

const wrappers = new WeakMap<DatabaseConnection, DeferringConnection>();

/** A dialect whose transactions can hold one-row INSERTs back (deferInserts). */
export function withDeferredInserts(dialect: Dialect): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createDriver: () => deferringDriver(dialect.createDriver(), dialect.createQueryCompiler()),
  };
}

function deferringDriver(inner: Driver, compiler: QueryCompiler): Driver {
  const unwrap = (c: DatabaseConnection) => (c instanceof DeferringConnection ? c.inner : c);
  return {
    init: () => inner.init(),
    async acquireConnection() {
      const c = await inner.acquireConnection();
      let w = wrappers.get(c);
      if (!w) {
        w = new DeferringConnection(c, compiler);
        wrappers.set(c, w);
      }
      return w;
    },
    releaseConnection: (c) => inner.releaseConnection(unwrap(c)),
    destroy: () => inner.destroy(),
    async beginTransaction(c, settings) {
      if (c instanceof DeferringConnection) c.reset();
      await inner.beginTransaction(unwrap(c), settings);
    },
    async commitTransaction(c) {
      if (c instanceof DeferringConnection) {
        try {
          await c.flush();
        } finally {
          c.tables = null;
        }
      }
      await inner.commitTransaction(unwrap(c));
    },
    async rollbackTransaction(c) {
      if (c instanceof DeferringConnection) c.reset();
      await inner.rollbackTransaction(unwrap(c));
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

/**
 * From here to the end of the transaction `trx`, its one-row INSERTs into `tables` are held and
 * written together (see above). Outside a transaction, or on a store without the wrapper, nothing
 * changes.
 */
export async function deferInserts(trx: Executor, tables: readonly string[]): Promise<void> {
  if (!trx.isTransaction) return;
  await trx.getExecutor().provideConnection(async (c) => {
    if (c instanceof DeferringConnection) c.tables = new Set(tables);
  });
}
