// Group commit: requests that arrive while a transaction is running wait, and are then written
// together, in one transaction, by the next. During a storm each commit (and, on SQLite, each
// write of the same index pages to the WAL) is paid once per batch instead of once per request,
// and nothing waits longer than it would have waited for the store anyway: a batch starts as soon
// as a slot is free, with whatever has queued. Every caller still learns its result only after
// the transaction holding its item committed.
//
// If a batch fails, its items are run again one at a time (`runOne`, with its own retries), so that
// one item's failure, or a race lost to another replica, is only that item's.

export type GroupCommitOptions = {
  /** Items per batch, at most. */
  maxItems: number;
  /** Sum of the items' weights per batch, at most (a batch always takes at least one item). */
  maxWeight: number;
  /** Batches in flight at once (1 where the store has one writer, as SQLite). */
  concurrency: number;
};

type Waiting<T, R> = { item: T; weight: number; resolve: (r: R) => void; reject: (err: unknown) => void };

export function createGroupCommit<T, R>(
  opts: GroupCommitOptions,
  weigh: (item: T) => number,
  runBatch: (items: T[]) => Promise<R[]>,
  runOne: (item: T) => Promise<R>,
) {
  const queue: Waiting<T, R>[] = [];
  let running = 0;

  function take(): Waiting<T, R>[] {
    const batch = [queue.shift()!];
    let weight = batch[0]!.weight;
    while (queue.length > 0 && batch.length < opts.maxItems && weight + queue[0]!.weight <= opts.maxWeight) {
      const next = queue.shift()!;
      weight += next.weight;
      batch.push(next);
    }
    return batch;
  }

  async function one(w: Waiting<T, R>): Promise<void> {
    try {
      w.resolve(await runOne(w.item));
    } catch (err) {
      w.reject(err);
    }
  }

  async function execute(batch: Waiting<T, R>[]): Promise<void> {
    if (batch.length === 1) return one(batch[0]!);
    let results: R[];
    try {
      results = await runBatch(batch.map((w) => w.item));
    } catch {
      for (const w of batch) await one(w);
      return;
    }
    batch.forEach((w, i) => w.resolve(results[i]!));
  }

  let scheduled = false;
  /**
   * Starts batches on the next turn of the event loop rather than at once: requests whose bytes
   * already arrived are parsed first and join the batch. Without it, a store whose calls never
   * leave the event loop (SQLite) writes every request alone, since nothing else runs while a
   * transaction does.
   */
  function pump(): void {
    if (scheduled || running >= opts.concurrency || queue.length === 0) return;
    scheduled = true;
    setImmediate(start);
  }

  function start(): void {
    scheduled = false;
    while (running < opts.concurrency && queue.length > 0) {
      const batch = take();
      running++;
      void execute(batch).finally(() => {
        running--;
        pump();
      });
    }
  }

  return {
    /** Resolves with the item's result once the transaction that wrote it committed. */
    submit(item: T): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, weight: Math.max(1, weigh(item)), resolve, reject });
        pump();
      });
    },
    /** Items waiting for a batch (not those being written). */
    get waiting(): number {
      return queue.length;
    },
  };
}
