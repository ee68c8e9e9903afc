import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, type Store } from "../../src/store/db.ts";
import { alertmanagerSender, type Plane, report, sleep, startPlane, stormAlert, TOKEN } from "./helpers.ts";
import { amPayload } from "../helpers/alerts.ts";

// Slow senders (slowloris): twenty connections send their headers, then the body at 8 bytes/s, ten
// with the token and ten without; four more trickle their headers too. Each is cut off before its body is through: 408 within
// BODY_TIMEOUT with the token, and without it 401 at once (or 408) — the connection does not stay
// open either way. Meanwhile /healthz answers and a normal AlertManager delivery is stored.

const BODY_TIMEOUT_MS = 3000;
const SENDERS = 20;

type Trickled = {
  token: boolean;
  headers: boolean;
  answer: string;
  ms: number;
  bytesSent: number;
  bytesToSend: number;
};

/**
 * The body 8 bytes a second (one byte every 125 ms) after the headers at once, or with `headers`
 * the headers too (the classic slowloris), until the server closes the connection.
 */
function trickle(port: number, body: string, token: boolean, headers = false): Promise<Trickled> {
  const started = Date.now();
  const socket = connect(port, "127.0.0.1");
  const head = `POST /webhooks/alertmanager HTTP/1.1\r\nHost: pitcrew\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${token ? `Authorization: Bearer ${TOKEN}\r\n` : ""}\r\n`;
  const slow = headers ? head + body : body;
  if (!headers) socket.write(head);
  let sent = 0;
  const timer = setInterval(() => {
    if (sent < slow.length && !socket.destroyed && socket.writable) socket.write(slow[sent++]!);
  }, 125);
  return new Promise((resolve) => {
    let answer = "";
    const done = () => {
      clearInterval(timer);
      socket.destroy();
      resolve({ token, headers, answer, ms: Date.now() - started, bytesSent: sent, bytesToSend: slow.length });
    };
    socket.on("data", (d) => (answer += d.toString()));
    socket.on("close", done);
    socket.on("error", done);
  });
}

describe("slow senders", () => {
  let dir: string;
  let plane: Plane;
  let store: Store;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "pitcrew-faults-slow-"));
    plane = await startPlane({ DATA_DIR: join(dir, "data"), BODY_TIMEOUT: `${BODY_TIMEOUT_MS}ms`, DRY_RUN: "true" });
    store = openStore({ dialect: "sqlite", file: join(dir, "data", "pitcrew.db") });
  });
  afterAll(async () => {
    await plane?.stop();
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("cuts off a body trickled at 8 bytes/s within BODY_TIMEOUT, with or without a token, while /healthz answers", async () => {
    const tag = randomBytes(4).toString("hex");
    const slowTag = randomBytes(4).toString("hex");
    // A small valid payload: ~20 s at 8 bytes/s, less than the 30 s default, so only the
    // BODY_TIMEOUT set here can cut it off.
    const body = JSON.stringify({
      version: "4",
      groupKey: "{}:{slow}",
      status: "firing",
      receiver: "pitcrew",
      alerts: [{ status: "firing", labels: { alertname: `Slow${slowTag}` }, startsAt: "2026-11-20T08:00:00Z" }],
    });
    const trickles = [
      ...Array.from({ length: SENDERS }, (_, i) => trickle(plane.port, body, i % 2 === 0)),
      ...Array.from({ length: 4 }, (_, i) => trickle(plane.port, body, i % 2 === 0, true)),
    ];
    let pending = true;
    const all = Promise.all(trickles).finally(() => (pending = false));

    // While they trickle: /healthz, and one AlertManager delivery.
    const health: number[] = [];
    const sender = alertmanagerSender(() => plane.base);
    const delivered = sleep(500).then(() =>
      sender.deliver(JSON.stringify(amPayload([stormAlert(tag, 1)], "{}:{fast}"))),
    );
    while (pending) {
      const res = await fetch(`${plane.base}/healthz`);
      health.push(res.status);
      await sleep(200);
    }
    const results = await all;
    const normal = await delivered;

    const slowStored = await store.db
      .selectFrom("alerts")
      .select("id")
      .where("alertname", "=", `Slow${slowTag}`)
      .execute();
    const fastStored = await store.db
      .selectFrom("alerts")
      .select("id")
      .where("labels", "like", `%storm-${tag}%`)
      .execute();
    const withToken = results.filter((r) => r.token && !r.headers);
    const without = results.filter((r) => !r.token && !r.headers);
    const slowHeaders = results.filter((r) => r.headers);
    const status = (r: Trickled) => r.answer.split("\r\n", 1)[0] || "(closed without an answer)";
    const tally = (rs: Trickled[]) => {
      const out: Record<string, number> = {};
      for (const r of rs) out[status(r)] = (out[status(r)] ?? 0) + 1;
      return out;
    };
    report("slow senders", {
      bodyTimeoutMs: BODY_TIMEOUT_MS,
      senders: SENDERS + 4,
      withToken: tally(withToken),
      withoutToken: tally(without),
      headersTrickled: tally(slowHeaders),
      cutAfterMs: { max: Math.max(...withToken.map((r) => r.ms)), min: Math.min(...withToken.map((r) => r.ms)) },
      mostBytesSent: `${Math.max(...results.map((r) => r.bytesSent))} of ${Math.min(...results.map((r) => r.bytesToSend))}`,
      healthzAnswers: health.length,
      healthzNot200: health.filter((s) => s !== 200).length,
      normalDelivery: normal.status,
      slowAlertsStored: slowStored.length,
    });

    for (const r of withToken) expect(status(r)).toMatch(/^HTTP\/1\.1 408 /);
    for (const r of without) expect(status(r)).toMatch(/^HTTP\/1\.1 (401|408) /);
    for (const r of slowHeaders) expect(status(r)).toMatch(/^HTTP\/1\.1 408 /);
    // Cut off before the request was through: the 408 is BODY_TIMEOUT's doing (how soon after it,
    // cutAfterMs in the line above shows).
    for (const r of results) expect(r.bytesSent).toBeLessThan(r.bytesToSend);
    expect(health.length).toBeGreaterThan(0);
    expect(health.filter((s) => s !== 200)).toEqual([]);
    expect(normal.status).toBe(200);
    expect(fastStored).toHaveLength(1);
    expect(slowStored).toHaveLength(0);
    expect(plane.alive()).toBe(true);
  }, 120_000);
});
