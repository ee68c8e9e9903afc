import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";

const DIR = join(import.meta.dirname, "..", "fixtures", "alertmanager");

export type Manifest = {
  good: Record<
    string,
    {
      alerts: number;
      firing: number;
      resolved: number;
      alertnames: string[];
      fingerprints: string[];
      truncatedAlerts: number;
    }
  >;
  /** `contentType`: sent instead of application/json (e.g. a charset other than UTF-8). */
  bad: Record<string, { code: string; description: string; contentType?: string }>;
};
export const manifest = JSON.parse(readFileSync(join(DIR, "manifest.json"), "utf8")) as Manifest;

export const newTag = () => randomBytes(4).toString("hex");

/** Maps a fixture fingerprint to this test's own, so runs on a shared database never meet. */
export const fp = (fingerprint: string, tag: string) =>
  createHash("sha256").update(`${fingerprint}:${tag}`).digest("hex").slice(0, 16);

function retag(text: string, tag: string): string {
  text = text.replace(/"fingerprint":\s*"([0-9a-f]{16})"/g, (_m, f: string) => `"fingerprint": "${fp(f, tag)}"`);
  text = text.replace(/"namespace":\s*"([a-z0-9-]+)"/g, (_m, ns: string) => `"namespace": "${ns}-${tag}"`);
  text = text.replace(/namespace=\\"([a-z0-9-]+)\\"/g, (_m, ns: string) => `namespace=\\"${ns}-${tag}\\"`);
  return text;
}

/**
 * A fixture body made unique to `tag`: fingerprints rehashed and namespaces suffixed (dedupe keys
 * use the namespace), as text so bad fixtures keep their exact badness.
 */
export function fixtureText(kind: "good" | "bad", file: string, tag: string): string {
  return retag(readFileSync(join(DIR, kind, file), "utf8"), tag);
}

/** Like fixtureText, but `.bin` fixtures (bytes that are not UTF-8) stay bytes. */
export function fixtureBody(kind: "good" | "bad", file: string, tag: string): string | Buffer {
  if (!file.endsWith(".bin")) return fixtureText(kind, file, tag);
  // latin1 maps every byte to one character and back, so the bytes survive the retagging.
  return Buffer.from(retag(readFileSync(join(DIR, kind, file)).toString("latin1"), tag), "latin1");
}

export function fixture(file: string, tag: string): any {
  return JSON.parse(fixtureText("good", file, tag));
}

export async function postAlerts(
  app: FastifyInstance,
  body: unknown,
  token: string | undefined,
  extraHeaders: Record<string, string> = {},
) {
  const headers: Record<string, string> = { "content-type": "application/json", ...extraHeaders };
  if (token) headers.authorization = `Bearer ${token}`;
  return app.inject({
    method: "POST",
    url: "/webhooks/alertmanager",
    headers,
    payload: typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
}

/** An AlertManager version-4 body around some alerts. */
export function amPayload<A>(alerts: A[], groupKey: string) {
  return {
    version: "4",
    groupKey,
    truncatedAlerts: 0,
    status: "firing",
    receiver: "pitcrew",
    groupLabels: {},
    commonLabels: {},
    commonAnnotations: {},
    externalURL: "http://alertmanager:9093",
    alerts,
  };
}
