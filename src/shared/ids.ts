import { randomFillSync } from "node:crypto";
import { monotonicFactory } from "ulid";

// ulid's default source asks the system for one random byte per character (16 calls per id);
// taking them from a buffer filled 4 KiB at a time gives the same cryptographic randomness at a
// fraction of the cost, which shows when a storm opens thousands of incidents a second.
const pool = new Uint8Array(4096);
let used = pool.length;
function randomFraction(): number {
  if (used >= pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  // A byte over 256 is uniform over ulid's 32 characters (256 is a multiple of 32).
  return pool[used++]! / 256;
}

/** A monotonic ULID generator drawing on the pooled randomness (one per id space). */
export const ulidFactory = () => monotonicFactory(randomFraction);

const next = ulidFactory();

export type IdPrefix = "inc" | "alr" | "tsk" | "evt" | "apr" | "sch" | "srn" | "whd" | "clm" | "obx" | "req";

/** Time-ordered ids (`tsk_01J…`): they sort by creation, so lists paginate by id. */
export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  return `${prefix}_${next(now)}`;
}
