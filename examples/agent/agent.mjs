#!/usr/bin/env node
// A minimal external agent for Pitcrew, with nothing but Node's standard library (Node 20+).
//
// It listens for Pitcrew's signed webhooks, checks each one's Standard Webhooks signature with the
// target's secret, and for an incident Pitcrew could not fix (incident.escalated,
// incident.fix_failed) it claims the incident, says it accepted the work, "works" (here: it reads
// the diagnosis Pitcrew sent), and reports a result. Replace work() with your own.
//
//   WEBHOOK_SECRET=whsec_…  the secret of the Pitcrew webhook target pointing here (required)
//   PORT=8787 HOST=127.0.0.1 AGENT_ID=example-agent
//
//   node examples/agent/agent.mjs
//
// The callbacks authenticate with the per-delivery bearer token from the body's `delivery` block.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const SECRET = process.env.WEBHOOK_SECRET ?? "";
const PORT = Number(process.env.PORT ?? 8787);
const HOST = process.env.HOST ?? "127.0.0.1";
const AGENT_ID = process.env.AGENT_ID ?? "example-agent";
const TOLERANCE_SECONDS = 5 * 60;
const HANDLED = new Set(["incident.escalated", "incident.fix_failed"]);

/**
 * Standard Webhooks: `webhook-signature` holds one or more `v1,<base64>` signatures, each an
 * HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<raw body>` keyed with the base64-decoded part of
 * the `whsec_` secret. The raw body must be the bytes as received, not re-serialised JSON.
 */
function verifyWebhook(secret, headers, rawBody, toleranceSeconds = TOLERANCE_SECONDS) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > toleranceSeconds) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(rawBody).digest();
  return signatures.split(" ").some((entry) => {
    const [version, signature] = entry.split(",");
    const given = Buffer.from(signature ?? "", "base64");
    return version === "v1" && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

function log(message, fields = {}) {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), agent: AGENT_ID, message, ...fields })}\n`);
}

async function call(url, token, body) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => ({})) };
}

/** The agent's job. This one only reads what Pitcrew sent and hands it back to a person. */
async function work(event) {
  const alerts = (event.diagnosis?.alerts ?? []).map((a) => a.alertname).filter(Boolean);
  return {
    status: "needs_human",
    summary: `${AGENT_ID} looked at "${event.incident.title}" (${event.diagnosis?.summary ?? "no reason given"}; alerts: ${alerts.join(", ") || "none"}) and has no automatic fix for it`,
  };
}

async function handle(event) {
  const d = event.delivery;
  if (!HANDLED.has(event.type) || !d?.claim_url || !d.token) return;
  const claim = await call(d.claim_url, d.token, { agent_id: AGENT_ID, delivery_id: d.id });
  if (claim.status === 409)
    return log("another agent holds the incident", { incident: event.incident.id, error: claim.body.error?.message });
  if (claim.status !== 200 && claim.status !== 201)
    return log("claim refused", { incident: event.incident.id, status: claim.status, error: claim.body.error });
  const lease = claim.body.lease_id;
  log("claimed", { incident: event.incident.id, lease, until: claim.body.expires_at });
  // Idempotency keys make a retried result safe: Pitcrew answers a repeat with the first answer.
  await call(d.result_url, d.token, {
    lease_id: lease,
    idempotency_key: `${d.id}:accepted`,
    status: "accepted",
    summary: "working on it",
  });
  let outcome;
  try {
    outcome = await work(event);
  } catch (err) {
    outcome = { status: "failed", summary: `the agent failed: ${err?.message ?? err}` };
  }
  const result = await call(d.result_url, d.token, { lease_id: lease, idempotency_key: `${d.id}:result`, ...outcome });
  log("reported", {
    incident: event.incident.id,
    status: outcome.status,
    answer: result.status,
    incident_state: result.body.incident_state,
  });
}

// Pitcrew sends a delivery again (same webhook-id) when it got no 2xx: do the work once.
const seen = new Map();

const server = createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > 1_048_576) req.destroy();
    else chunks.push(c);
  });
  req.on("end", () => {
    const raw = Buffer.concat(chunks);
    if (req.method !== "POST" || !verifyWebhook(SECRET, req.headers, raw)) {
      res.writeHead(401).end();
      return log("refused a request that is not a valid signed delivery", { path: req.url });
    }
    // Answer at once; the work goes on after the answer.
    res.writeHead(202, { "content-type": "application/json" }).end('{"ok":true}');
    const id = req.headers["webhook-id"];
    const now = Date.now();
    for (const [k, at] of seen) if (now - at > 2 * TOLERANCE_SECONDS * 1000) seen.delete(k);
    if (seen.has(id)) return;
    seen.set(id, now);
    let event;
    try {
      event = JSON.parse(raw.toString("utf8"));
    } catch {
      return log("the delivery is not JSON", { id });
    }
    log("delivery", { id, type: event.type, incident: event.incident?.id });
    handle(event).catch((err) => log("callback failed", { error: String(err?.message ?? err) }));
  });
});

if (!SECRET.startsWith("whsec_")) {
  process.stderr.write("set WEBHOOK_SECRET to the whsec_ secret of the Pitcrew webhook target that points here\n");
  process.exit(2);
}
server.listen(PORT, HOST, () => log("listening", { url: `http://${HOST}:${server.address().port}` }));
