// The targets of the benchmark suite, checked against a run's figures, and the table printed
// beside the JSON document. A missing figure (a part not run, a service absent) has no verdict.

type Verdict = { target: string; value: number | null; goal: string; met: boolean | null };

const at = (o: any, path: string): number | null => {
  const v = path.split(".").reduce((x, k) => (x == null ? undefined : x[k]), o);
  return typeof v === "number" && Number.isFinite(v) ? v : null;
};

const TARGETS: Array<{
  target: string;
  path: string | ((r: unknown) => number | null);
  op: ">=" | "<=";
  goal: number;
}> = [
  {
    target: "intake embedded posts/s (1 alert/post)",
    path: "intake.embedded.alerts_per_post_1.pitcrew.posts_per_s",
    op: ">=",
    goal: 2000,
  },
  {
    target: "intake embedded / bare fastify (1 alert/post)",
    path: "intake.embedded.alerts_per_post_1.ratio",
    op: ">=",
    goal: 0.2,
  },
  {
    target: "intake embedded p99 ms (1 alert/post)",
    path: "intake.embedded.alerts_per_post_1.pitcrew.p99_ms",
    op: "<=",
    goal: 50,
  },
  {
    target: "intake embedded alerts/s (100 alerts/post)",
    path: "intake.embedded.alerts_per_post_100.pitcrew.alerts_per_s",
    op: ">=",
    goal: 10_000,
  },
  {
    target: "intake distributed posts/s (1 alert/post)",
    path: "intake.distributed.alerts_per_post_1.pitcrew.posts_per_s",
    op: ">=",
    goal: 2000,
  },
  {
    target: "intake distributed p99 ms (1 alert/post)",
    path: "intake.distributed.alerts_per_post_1.pitcrew.p99_ms",
    op: "<=",
    goal: 50,
  },
  {
    target: "intake distributed alerts/s (100 alerts/post)",
    path: "intake.distributed.alerts_per_post_100.pitcrew.alerts_per_s",
    op: ">=",
    goal: 10_000,
  },
  { target: "dispatch p50 ms (JetStream)", path: "dispatch.jetstream.from_commit.p50_ms", op: "<=", goal: 20 },
  { target: "dispatch p99 ms (JetStream)", path: "dispatch.jetstream.from_commit.p99_ms", op: "<=", goal: 100 },
  {
    target: "tasks / raw JetStream (MariaDB + JetStream)",
    path: "tasks.distributed.ratio_to_jetstream",
    op: ">=",
    goal: 0.3,
  },
  {
    target: "MCP get_incident calls/s (embedded)",
    path: "mcp.embedded.get_incident.pitcrew.calls_per_s",
    op: ">=",
    goal: 1500,
  },
  {
    target: "MCP list_incidents calls/s (embedded)",
    path: "mcp.embedded.list_incidents.pitcrew.calls_per_s",
    op: ">=",
    goal: 1500,
  },
  {
    target: "MCP list_incidents p99 ms (embedded)",
    path: "mcp.embedded.list_incidents.pitcrew.p99_ms",
    op: "<=",
    goal: 20,
  },
  {
    target: "MCP get_incident calls/s (MariaDB)",
    path: "mcp.distributed.get_incident.pitcrew.calls_per_s",
    op: ">=",
    goal: 1500,
  },
  {
    target: "MCP list_incidents p99 ms (MariaDB)",
    path: "mcp.distributed.list_incidents.pitcrew.p99_ms",
    op: "<=",
    goal: 20,
  },
  { target: "start to /healthz ms (dist, median)", path: "startup.dist.healthzMsMedian", op: "<=", goal: 1000 },
  { target: "start to /healthz ms (tsx, median)", path: "startup.tsx.healthzMsMedian", op: "<=", goal: 1000 },
  {
    target: "RSS MB under intake load (highest)",
    path: (r) => {
      const xs: number[] = [];
      for (const mode of ["embedded", "distributed"])
        for (const size of [1, 10, 100]) {
          const v = at(r, `intake.${mode}.alerts_per_post_${size}.rss_under_load_mb`);
          if (v !== null) xs.push(v);
        }
      return xs.length ? Math.max(...xs) : null;
    },
    op: "<=",
    goal: 150,
  },
];

export function verdicts(results: Record<string, unknown>): Verdict[] {
  return TARGETS.map((t) => {
    const value = typeof t.path === "string" ? at(results, t.path) : t.path(results);
    const met = value === null ? null : t.op === ">=" ? value >= t.goal : value <= t.goal;
    return { target: t.target, value, goal: `${t.op} ${t.goal}`, met };
  });
}

const pad = (s: unknown, n: number) => String(s ?? "–").padEnd(n);
const padL = (s: unknown, n: number) => String(s ?? "–").padStart(n);

/** A readable summary on stderr (stdout carries the JSON document). */
export function printTable(doc: { quick: boolean; results: Record<string, any>; targets: Verdict[] }): void {
  const lines: string[] = [""];
  const r = doc.results;
  if (doc.quick) lines.push("QUICK RUN: the figures below only show that every part runs.", "");
  for (const mode of ["embedded", "distributed"]) {
    const m = r.intake?.[mode];
    if (!m || m.skipped) continue;
    lines.push(
      `intake ${mode}  alerts/post  posts/s  alerts/s  p50 ms  p99 ms  CPU ms/post | bare posts/s  bare p99  CPU ms/post | ratio  CPU ratio  RSS MB`,
    );
    for (const size of [1, 10, 100]) {
      const c = m[`alerts_per_post_${size}`];
      if (!c) continue;
      lines.push(
        `${pad("", mode.length + 7)}${padL(size, 11)}  ${padL(c.pitcrew.posts_per_s, 7)}  ${padL(c.pitcrew.alerts_per_s, 8)}  ${padL(c.pitcrew.p50_ms, 6)}  ${padL(c.pitcrew.p99_ms, 6)}  ${padL(c.pitcrew.cpu_ms_per_post, 11)} | ${padL(c.bare.posts_per_s, 12)}  ${padL(c.bare.p99_ms, 8)}  ${padL(c.bare.cpu_ms_per_post, 11)} | ${padL(c.ratio, 6)}  ${padL(c.cpu_ratio, 9)}  ${padL(c.rss_under_load_mb, 6)}`,
      );
    }
    lines.push("");
  }
  if (r.dispatch && !r.dispatch.error) {
    const d = r.dispatch;
    lines.push(
      `dispatch  JetStream p50/p99 ${d.jetstream?.from_commit?.p50_ms ?? "–"}/${d.jetstream?.from_commit?.p99_ms ?? "–"} ms  embedded ${d.embedded?.from_commit?.p50_ms}/${d.embedded?.from_commit?.p99_ms} ms | raw JetStream round trip ${d.baseline_jetstream_round_trip?.p50_ms ?? "–"}/${d.baseline_jetstream_round_trip?.p99_ms ?? "–"} ms`,
    );
  }
  if (r.tasks && !r.tasks.error)
    lines.push(
      `tasks     embedded ${r.tasks.embedded?.per_s}/s  MariaDB+JetStream ${r.tasks.distributed?.per_s ?? "–"}/s | raw JetStream ${r.tasks.baseline_jetstream?.per_s ?? "–"}/s`,
    );
  for (const mode of ["embedded", "distributed"]) {
    const m = r.mcp?.[mode];
    if (!m || m.skipped) continue;
    for (const tool of ["get_incident", "list_incidents"])
      lines.push(
        `mcp       ${pad(mode, 11)} ${pad(tool, 14)} ${padL(m[tool].pitcrew.calls_per_s, 6)}/s  p99 ${m[tool].pitcrew.p99_ms} ms  CPU ${m[tool].pitcrew.cpu_ms_per_call} ms/call | bare ${m[tool].bare.calls_per_s}/s  CPU ${m[tool].bare.cpu_ms_per_call} ms/call | ratio ${m[tool].ratio}  CPU ratio ${m[tool].cpu_ratio}`,
      );
  }
  if (r.startup && !r.startup.error)
    lines.push(
      `startup   tsx ${r.startup.tsx?.healthzMsMedian} ms, ${r.startup.tsx?.idleRssMbMedian} MB idle  dist ${r.startup.dist?.healthzMsMedian} ms, ${r.startup.dist?.idleRssMbMedian} MB idle | bare fastify ${r.startup.baseline_bare?.healthz_ms ?? "–"} ms, ${r.startup.baseline_bare?.idle_rss_mb ?? "–"} MB`,
    );
  if (r.latency && !r.latency.error) {
    const l = r.latency;
    lines.push(
      `latency   agent cancel→end p50/max ${l.agent_cancel_to_end.p50_ms}/${l.agent_cancel_to_end.max_ms} ms  past its timeout ${l.agent_timeout_overshoot.p50_ms}/${l.agent_timeout_overshoot.max_ms} ms | probe past its timeout ${l.probe_timeout_overshoot.p50_ms}/${l.probe_timeout_overshoot.max_ms} ms`,
    );
  }
  for (const [part, v] of Object.entries(r))
    if (v?.error) lines.push(`${part}: FAILED ${String(v.error).split("\n")[0]}`);
  lines.push("", `${pad("target", 48)} ${padL("value", 10)}  ${pad("goal", 10)} met`);
  for (const v of doc.targets)
    lines.push(
      `${pad(v.target, 48)} ${padL(v.value, 10)}  ${pad(v.goal, 10)} ${v.met === null ? "–" : v.met ? "yes" : "NO"}`,
    );
  process.stderr.write(`${lines.join("\n")}\n`);
}
