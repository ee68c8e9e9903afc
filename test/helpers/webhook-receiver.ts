import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IncidentEvent } from "../../src/incidents/lifecycle.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { applyTransition } from "../../src/incidents/service.ts";
import type { Store } from "../../src/store/db.ts";

// A webhook receiver on loopback that answers as a test tells it (a status, a delay, a redirect)
// and records every request as it arrived (raw body and headers), and the little a webhook test
// needs around it: target files in a temp folder, and incidents that emit the events.

export type Received = { method: string; url: string; headers: IncomingHttpHeaders; body: string; at: number };
export type Answer = { status: number; headers?: Record<string, string>; body?: string; delayMs?: number };

export async function startReceiver() {
  const received: Received[] = [];
  let answer: (r: Received, n: number) => Answer = () => ({ status: 204 });
  let server: Server;
  let port = 0;

  async function listen(): Promise<void> {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const r = {
          method: req.method ?? "",
          url: req.url ?? "",
          headers: req.headers,
          body: Buffer.concat(chunks).toString("utf8"),
          at: Date.now(),
        };
        received.push(r);
        const a = answer(r, received.length);
        const send = () => res.writeHead(a.status, a.headers).end(a.body ?? "");
        if (a.delayMs) setTimeout(send, a.delayMs);
        else send();
      });
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
    port = (server.address() as { port: number }).port;
  }
  await listen();

  return {
    received,
    get port() {
      return port;
    },
    url: (path = "/hook") => `http://127.0.0.1:${port}${path}`,
    answer(fn: (r: Received, n: number) => Answer) {
      answer = fn;
    },
    /** Requests to one path. */
    at: (path: string) => received.filter((r) => r.url === path),
    /** Stops listening (connections are refused) until `start` listens again on the same port. */
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    start: listen,
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/** A WEBHOOKS_DIR with the given files. */
export function targetDir(files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-webhooks-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return {
    dir,
    write: (name: string, text: string) => writeFileSync(join(dir, name), text),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function moveIncident(
  store: Store,
  id: string,
  event: IncidentEvent,
  reason: string,
  now = Date.now(),
): Promise<void> {
  await store.db
    .transaction()
    .execute(async (trx) =>
      applyTransition(
        trx,
        store.dialect,
        (await getIncident(trx, id))!,
        event,
        { actor: "pitcrew:test", channel: "engine", reason },
        now,
      ),
    );
}
