import { z } from "zod";
import { defineTool } from "../tool.ts";
import { errorMessage } from "../../shared/errors.ts";
import { VERSION } from "../../shared/version.ts";
import { getPause } from "../../system/settings.ts";

const Check = z.object({
  ok: z.boolean().describe("Whether the dependency answered."),
  detail: z.string().describe('"ok", or what went wrong.'),
});

export const systemStatus = defineTool({
  name: "system_status",
  title: "System status",
  description:
    "Shows the version, the mode (embedded or distributed), whether the store and the queue answer, whether automation is paused, and which agent CLIs the loaded skills need but are not installed.",
  scope: "read",
  input: {},
  output: {
    version: z.string().describe("Pitcrew version."),
    mode: z
      .enum(["embedded", "distributed"])
      .describe("embedded: in-process queue and runners; distributed: NATS JetStream and separate runners."),
    store: Check.extend({ dialect: z.enum(["sqlite", "mysql"]).describe("The database kind.") }).describe(
      "The database.",
    ),
    queue: Check.extend({ kind: z.enum(["memory", "jetstream"]).describe("The queue adapter.") }).describe(
      "The task queue.",
    ),
    paused: z
      .object({
        paused: z
          .boolean()
          .describe("Whether automation is paused (incidents are recorded but not analysed or fixed)."),
        by: z.string().nullable().describe("Who paused or resumed last."),
        at: z.string().nullable().describe("ISO time of that change."),
        reason: z.string().nullable().describe("The reason given."),
      })
      .nullable()
      .describe("The pause switch; null when the store did not answer."),
    missing_agent_clis: z
      .array(
        z.object({
          agent: z.string().describe("The agent name (a skill's agent.command, or AGENT_DEFAULT)."),
          program: z
            .string()
            .nullable()
            .describe("The program its AGENT_COMMANDS template starts; null when AGENT_COMMANDS has no such agent."),
          skills: z.array(z.string()).describe("The loaded skills that use it."),
          hint: z.string().describe("How to fix it."),
        }),
      )
      .optional()
      .describe(
        "Present when loaded skills need agent CLIs that the in-process runners (embedded mode) cannot find on their PATH. Standalone runners check their own PATH at start and log what is missing.",
      ),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(_args, { deps }) {
    const [store, queue] = await Promise.allSettled([deps.store.ping(1500), deps.queue.health()]);
    const storeCheck =
      store.status === "fulfilled" ? { ok: true, detail: "ok" } : { ok: false, detail: errorMessage(store.reason) };
    const queueCheck =
      queue.status === "rejected"
        ? { ok: false, detail: errorMessage(queue.reason) }
        : queue.value.ok
          ? { ok: true, detail: "ok" }
          : { ok: false, detail: queue.value.reason };
    const pause = storeCheck.ok ? await getPause(deps.store.db).catch(() => null) : null;
    const paused = pause && { ...pause, at: pause.at === null ? null : new Date(pause.at).toISOString() };
    const mode: "embedded" | "distributed" = deps.queue.kind === "memory" ? "embedded" : "distributed";
    const health =
      storeCheck.ok && queueCheck.ok
        ? "healthy"
        : `degraded (${[!storeCheck.ok && `store: ${storeCheck.detail}`, !queueCheck.ok && `queue: ${queueCheck.detail}`].filter(Boolean).join("; ")})`;
    const missing = deps.missingAgentClis?.() ?? [];
    const pauseText =
      paused === null
        ? "pause state unknown"
        : paused.paused
          ? `automation PAUSED${paused.reason ? ` (${paused.reason})` : ""}`
          : "automation running";
    return {
      summary: `Pitcrew ${VERSION}, ${mode}: ${health}; ${pauseText}${missing.length ? `; agent CLI not installed: ${missing.map((m) => `${m.program ?? m.agent} (${m.skills.join(", ")})`).join("; ")}` : ""}`,
      data: {
        version: VERSION,
        mode,
        store: { ...storeCheck, dialect: deps.store.dialect },
        queue: { ...queueCheck, kind: deps.queue.kind },
        paused,
        ...(missing.length
          ? {
              missing_agent_clis: missing.map((m) => ({
                agent: m.agent,
                program: m.program ?? null,
                skills: m.skills,
                hint: m.hint,
              })),
            }
          : {}),
      },
    };
  },
});
