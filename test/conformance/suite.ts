import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isScalar, isSeq, parseDocument } from "yaml";

// Runs the official MCP conformance suite's server scenarios against a URL and judges the results
// against expected-failures.yaml. The suite and the Node 22 it needs live in this folder's own
// node_modules (`npm ci --prefix test/conformance`), not the project's: a `node` package among the
// project's dependencies would put Node 22 first on the PATH of every npm script.

const HERE = dirname(fileURLToPath(import.meta.url));
export const NODE22 = join(HERE, "node_modules", "node", "bin", "node");

/**
 * The two runs: the released suite (`latest`, the 2025-06-18 and 2025-11-25 revisions, clients
 * that initialize), and the 2026-07-28 requirements of the suite's 0.2 line (installed under the
 * alias `conformance-2026`; clients that probe `server/discover` and send the `_meta` envelope).
 */
export type Suite = { name: string; cli: string; args: string[]; expectedFailures: string };
export const SUITES: Suite[] = [
  {
    name: "2025-11-25",
    cli: join(HERE, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js"),
    args: [],
    expectedFailures: join(HERE, "expected-failures.yaml"),
  },
  {
    name: "2026-07-28",
    cli: join(HERE, "node_modules", "conformance-2026", "dist", "index.js"),
    args: ["--requirements", "2026-07-28"],
    expectedFailures: join(HERE, "expected-failures-2026-07-28.yaml"),
  },
];
export const EXPECTED_FAILURES = SUITES[0]!.expectedFailures;

export type CheckStatus = "SUCCESS" | "FAILURE" | "WARNING" | "SKIPPED" | "INFO";
export type Check = { id: string; status: CheckStatus; description: string; errorMessage?: string };
export type ScenarioResult = { scenario: string; checks: Check[] };

/** Why the suite cannot run here, or undefined when it can. */
export function suiteMissing(suite: Suite = SUITES[0]!): string | undefined {
  if (!existsSync(suite.cli))
    return `the conformance suite is not installed at ${suite.cli}: run npm ci --prefix test/conformance`;
  if (!existsSync(NODE22)) return `no Node 22 binary at ${NODE22}: run npm ci --prefix test/conformance`;
  const version = execFileSync(NODE22, ["--version"], { encoding: "utf8" }).trim();
  if (Number(/^v(\d+)\./.exec(version)?.[1] ?? 0) < 22)
    return `${NODE22} is ${version}; the conformance suite needs Node 22 or later`;
  return undefined;
}

export function suiteVersion(suite: Suite = SUITES[0]!): string {
  return (JSON.parse(readFileSync(join(dirname(dirname(suite.cli)), "package.json"), "utf8")) as { version: string })
    .version;
}

/**
 * The suite has no way to send credentials to the server under test, so it talks to this reverse
 * proxy, which adds `Authorization: Bearer <token>` to every request and passes everything else
 * (Host and Origin included) through unchanged.
 */
export async function startTokenProxy(target: { host: string; port: number }, token: string, port = 0) {
  const server: Server = createServer((req, res) => {
    const upstream = request(
      {
        host: target.host,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, authorization: `Bearer ${token}` },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
        answer.pipe(res);
      },
    );
    upstream.on("error", (err) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`proxy: ${err.message}`);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const RESULT_DIR = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/**
 * Runs the suite's active server scenarios against `url` with the Node 22 binary; the results are
 * read from the `checks.json` it writes per scenario under `outDir`. A scenario it announced but
 * wrote nothing for (the suite itself failed to run it) is a failure with the suite's output.
 */
export async function runSuite(
  url: string,
  outDir: string,
  timeoutMs: number,
  suite: Suite = SUITES[0]!,
): Promise<{ exitCode: number | null; output: string; results: ScenarioResult[] }> {
  const child = spawn(NODE22, [suite.cli, "server", "--url", url, "--output-dir", outDir, ...suite.args], {
    cwd: outDir,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (b) => (output += b));
  child.stderr.on("data", (b) => (output += b));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  clearTimeout(timer);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
  output = output.replace(/\x1b\[[0-9;]*m/g, "");

  const written = new Map<string, Check[]>();
  for (const dir of readdirSync(outDir)) {
    const m = RESULT_DIR.exec(dir);
    if (m) written.set(m[1]!, JSON.parse(readFileSync(join(outDir, dir, "checks.json"), "utf8")) as Check[]);
  }
  const announced = [...output.matchAll(/^=== Running scenario: (\S+) ===$/gm)].map((m) => m[1]!);
  const results = announced.map((scenario) => ({
    scenario,
    checks: written.get(scenario) ?? [
      {
        id: scenario,
        status: "FAILURE" as const,
        description: "the suite wrote no results",
        errorMessage: output.slice(-2000),
      },
    ],
  }));
  return { exitCode, output, results };
}

export type ExpectedFailures = {
  /** Scenarios that need the suite's own fixtures, with the reason. */
  fixtures: Map<string, string>;
  /** Known Pitcrew defects tolerated for now (section `known-defects`), with the issue. */
  knownDefects: Map<string, string>;
  /** Entries without a reason. */
  unexplained: string[];
};

export function loadExpectedFailures(file = EXPECTED_FAILURES): ExpectedFailures {
  const doc = parseDocument(readFileSync(file, "utf8"));
  const out: ExpectedFailures = { fixtures: new Map(), knownDefects: new Map(), unexplained: [] };
  for (const [key, into] of [
    ["server", out.fixtures],
    ["known-defects", out.knownDefects],
  ] as const) {
    const seq = doc.get(key);
    if (seq === undefined) continue;
    if (!isSeq(seq)) throw new Error(`${file}: ${key} must be a list of scenario ids`);
    for (const item of seq.items) {
      if (!isScalar(item)) throw new Error(`${file}: ${key} must be a list of scenario ids`);
      const reason = item.comment?.trim();
      if (reason) into.set(String(item.value), reason);
      else out.unexplained.push(String(item.value));
    }
  }
  return out;
}

export const failed = (r: ScenarioResult) => r.checks.some((c) => c.status === "FAILURE");

export type Verdict = {
  /** Failing scenarios that are not listed. */
  unexpected: ScenarioResult[];
  /** Listed scenarios that pass. */
  stale: string[];
  /** Listed scenarios the suite did not run. */
  unknown: string[];
};

/**
 * An entry is a scenario id (the whole scenario is expected to fail) or `scenario#check-id` (only
 * that check is: the scenario's other checks must pass).
 */
export function judge(results: ScenarioResult[], expected: ExpectedFailures): Verdict {
  const listed = new Set([...expected.fixtures.keys(), ...expected.knownDefects.keys()]);
  const ran = new Set(results.flatMap((r) => [r.scenario, ...r.checks.map((c) => `${r.scenario}#${c.id}`)]));
  const failing = (r: ScenarioResult) => r.checks.filter((c) => c.status === "FAILURE");
  const unexpected = results
    .filter((r) => !listed.has(r.scenario))
    .map((r) => ({ ...r, checks: failing(r).filter((c) => !listed.has(`${r.scenario}#${c.id}`)) }))
    .filter((r) => r.checks.length > 0);
  const failed = new Set(results.flatMap((r) => failing(r).map((c) => `${r.scenario}#${c.id}`)));
  const stale = [
    ...results.filter((r) => failing(r).length === 0 && listed.has(r.scenario)).map((r) => r.scenario),
    ...[...listed].filter((e) => e.includes("#") && ran.has(e) && !failed.has(e)),
  ];
  return { unexpected, stale, unknown: [...listed].filter((s) => !ran.has(s)) };
}

/** One line per failing check of a scenario, as the suite words it. */
export function describeFailure(r: ScenarioResult): string {
  const lines = r.checks
    .filter((c) => c.status === "FAILURE")
    .map((c) => `    [${c.id}] ${c.errorMessage ?? c.description}`);
  return `  ${r.scenario}\n${lines.join("\n")}`;
}
