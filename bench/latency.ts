// The latency part of `npm run bench`: how long Pitcrew takes to give up once a limit is reached
// or a cancel comes. The tests show that it gives up, and why; they hold no wall-clock bounds, so
// how fast is measured here: overshoot past the limit (or from the cancel to the end), in ms.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAgentExecutor } from "../runner/executors/agent.ts";
import type { ExecContext } from "../runner/executors/types.ts";
import type { TaskMessage } from "../src/bus/jobs.ts";
import { runProbe } from "../src/skills/builtins/probe.ts";
import { latencySummary, type Options } from "./lib.ts";

// An agent CLI that never finishes, with a child that ignores SIGTERM: ending it takes the
// executor's whole kill sequence (TERM to the group, then KILL after the grace).
const HUNG = "#!/bin/sh\n( trap '' TERM; exec sleep 1000 ) &\necho thinking\nsleep 1000\n";

export async function benchLatency(opts: Options) {
  const runs = opts.quick ? 1 : 5;
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-bench-latency-"));
  const server = createServer(() => {}); // accepts, never answers
  try {
    const cli = join(dir, "hung");
    writeFileSync(cli, HUNG);
    chmodSync(cli, 0o755);
    mkdirSync(join(dir, "workspaces"));
    const agent = createAgentExecutor({
      commands: { hung: [cli] },
      defaultAgent: "hung",
      allowEnv: [],
      env: { PATH: process.env.PATH, LANG: "C.UTF-8" },
      workspaceBase: join(dir, "workspaces"),
    });
    let seq = 0;
    const task = (timeoutMs: number): TaskMessage => ({
      v: 1,
      taskId: `tsk_bench_latency_${++seq}`,
      kind: "prompt",
      pool: "default",
      incidentId: null,
      payload: { prompt: "x", agent: "hung", timeoutMs },
      createdAt: Date.now(),
    });
    const context = (signal: AbortSignal, onLine: (line: string) => void): ExecContext => ({
      signal,
      attempt: 1,
      progress: async () => {},
      log: async (_stream, line) => onLine(line),
    });

    const cancelToEnd: number[] = [];
    const timeoutOvershoot: number[] = [];
    const agentTimeoutMs = 1000;
    for (let i = 0; i < runs; i++) {
      const ac = new AbortController();
      let running!: () => void;
      const printed = new Promise<void>((r) => (running = r));
      const run = agent
        .prompt(
          task(60_000),
          context(ac.signal, (l) => l === "thinking" && running()),
        )
        .catch(() => {});
      await printed;
      const t0 = performance.now();
      ac.abort("cancelled");
      await run;
      cancelToEnd.push(performance.now() - t0);

      const t1 = performance.now();
      await agent
        .prompt(
          task(agentTimeoutMs),
          context(new AbortController().signal, () => {}),
        )
        .catch(() => {});
      timeoutOvershoot.push(performance.now() - t1 - agentTimeoutMs);
    }

    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hang`;
    const probeTimeoutMs = 300;
    const probeOvershoot: number[] = [];
    for (let i = 0; i < runs * 4; i++) {
      const t0 = performance.now();
      await runProbe({ url, timeout: `${probeTimeoutMs}ms` });
      probeOvershoot.push(performance.now() - t0 - probeTimeoutMs);
    }

    return {
      agent_cancel_to_end: latencySummary(cancelToEnd),
      agent_timeout_overshoot: { timeout_ms: agentTimeoutMs, ...latencySummary(timeoutOvershoot) },
      probe_timeout_overshoot: { timeout_ms: probeTimeoutMs, ...latencySummary(probeOvershoot) },
    };
  } finally {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
