import { monotonicFactory } from "ulid";

const next = monotonicFactory();

export type IdPrefix = "inc" | "alr" | "tsk" | "evt" | "apr" | "sch" | "srn" | "whd" | "clm" | "obx" | "req";

/** Time-ordered ids (`tsk_01J…`): they sort by creation, so lists paginate by id. */
export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  return `${prefix}_${next(now)}`;
}
