// The baseline of `npm run bench`: a bare fastify app, run by node as `pitcrew serve` is (from
// JavaScript, no loader), that parses the same JSON bodies with fastify's own parser and answers
// at once. What Pitcrew does beyond this (validation, the store, the queue) is what the ratios show.
import Fastify from "fastify";

const app = Fastify({ logger: false, bodyLimit: 32 * 1_048_576 });
app.get("/healthz", async () => ({ status: "ok" }));
app.post("/webhooks/alertmanager", async (req) => {
  const alerts = req.body?.alerts;
  return { status: "accepted", alerts: Array.isArray(alerts) ? alerts.length : 0 };
});
// A JSON-RPC answer of a tool call's shape, for the MCP benchmark's baseline.
app.post("/mcp", async (req) => ({
  jsonrpc: "2.0",
  id: req.body?.id ?? null,
  result: { content: [{ type: "text", text: JSON.stringify(req.body?.params ?? null) }] },
}));
await app.listen({ port: Number(process.env.PORT), host: "127.0.0.1" });
