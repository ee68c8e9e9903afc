import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";

// The console's only static files: one stylesheet and one small script, read from ./assets at start
// and served as /assets/<name>.<hash>.<ext> with a year-long immutable cache (a new version has a
// new name). Nothing comes from a CDN; the Content-Security-Policy allows only 'self'.

type Asset = { path: string; type: string; body: Buffer };

const FILES: Record<string, string> = {
  "console.css": "text/css; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
};

function load(): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const [name, type] of Object.entries(FILES)) {
    const body = readFileSync(new URL(`./assets/${name}`, import.meta.url));
    const hash = createHash("sha256").update(body).digest("hex").slice(0, 12);
    const dot = name.lastIndexOf(".");
    out.set(name, { path: `/assets/${name.slice(0, dot)}.${hash}${name.slice(dot)}`, type, body });
  }
  return out;
}

let assets: Map<string, Asset> | undefined;
const all = () => (assets ??= load());

/** The URL of an asset by its file name (`console.css`). */
export function assetPath(name: keyof typeof FILES | string): string {
  const a = all().get(name);
  if (!a) throw new Error(`unknown console asset ${name}`);
  return a.path;
}

export function assetRoutes(app: FastifyInstance): void {
  for (const a of all().values()) {
    app.get(a.path, async (_req, reply) =>
      reply.header("content-type", a.type).header("cache-control", "public, max-age=31536000, immutable").send(a.body),
    );
  }
}
