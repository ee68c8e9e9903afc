import { createHmac, randomBytes } from "node:crypto";
import type { Dialect } from "../store/db.ts";
import { insertIfAbsent, type Executor } from "../store/sql.ts";

// The per-delivery bearer token of a webhook's `delivery` block: HMAC-SHA256 of the delivery id
// under one random key kept in `settings` (made once, so every replica derives the same token for
// a delivery). The deliveries table keeps only the token's sha256, so its rows, list_deliveries
// and a copy of that table never hold a usable token, and every attempt sends the same body.

const KEY = "webhooks.token_key";

export function createDeliveryTokens(deps: { db: Executor; dialect: Dialect; now: () => number }) {
  let key: Buffer | undefined;

  async function load(): Promise<Buffer> {
    if (key) return key;
    const read = async () =>
      (await deps.db.selectFrom("settings").select("value").where("key", "=", KEY).executeTakeFirst())?.value;
    let value = await read();
    if (!value) {
      const made = JSON.stringify({ key: randomBytes(32).toString("base64") });
      await insertIfAbsent(deps.db, deps.dialect, "settings", {
        key: KEY,
        value: made,
        updated_by: "pitcrew:webhooks",
        updated_at: deps.now(),
      });
      value = await read();
    }
    key = Buffer.from((JSON.parse(value!) as { key: string }).key, "base64");
    return key;
  }

  return {
    async token(deliveryId: string): Promise<string> {
      return `pcd_${createHmac("sha256", await load())
        .update(deliveryId)
        .digest("base64url")}`;
    },
  };
}

export type DeliveryTokens = ReturnType<typeof createDeliveryTokens>;
