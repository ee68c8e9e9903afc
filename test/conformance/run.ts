import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  describeFailure,
  failed,
  judge,
  loadExpectedFailures,
  runSuite,
  SUITES,
  startTokenProxy,
  suiteMissing,
} from "./suite.ts";

// Runs the conformance suite's server scenarios against a running Pitcrew through the
// token-adding proxy and judges them as the test does (expected-failures.yaml; warnings are not
// failures):
//   npx tsx test/conformance/run.ts --url http://127.0.0.1:18088/mcp --token "$TOKEN" [--proxy-port 18089] [--suite 2026-07-28]
// For the DNS-rebinding scenario to pass, the proxy's origin (http://127.0.0.1:<proxy port>) must
// be Pitcrew's PUBLIC_URL or listed in MCP_ALLOWED_ORIGINS.

const args = process.argv.slice(2);
const option = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const url = option("--url");
const token = option("--token");
const proxyPort = Number(option("--proxy-port") ?? 0);
const suite = SUITES.find((s) => s.name === (option("--suite") ?? SUITES[0]!.name));
if (!suite) {
  console.error(`--suite: one of ${SUITES.map((s) => s.name).join(", ")}`);
  process.exit(2);
}
const missing = suiteMissing(suite);
if (missing) {
  console.error(missing);
  process.exit(2);
}
if (!url || !token || !Number.isInteger(proxyPort)) {
  console.error("usage: run.ts --url <Pitcrew's /mcp URL> --token <MCP token> [--proxy-port <port>]");
  process.exit(2);
}

const target = new URL(url);
const proxy = await startTokenProxy({ host: target.hostname, port: Number(target.port || 80) }, token, proxyPort);
const dir = mkdtempSync(join(tmpdir(), "pitcrew-conformance-"));
try {
  const { results, output } = await runSuite(`${proxy.origin}${target.pathname}`, dir, 300_000, suite);
  const verdict = judge(results, loadExpectedFailures(suite.expectedFailures));
  for (const r of results) console.log(`${failed(r) ? "✗" : "✓"} ${r.scenario}`);
  if (results.length === 0) console.log(output);
  if (verdict.unexpected.length > 0)
    console.log(`\nunexpected failures:\n${verdict.unexpected.map(describeFailure).join("\n")}`);
  if (verdict.stale.length > 0) console.log(`\nlisted but passing: ${verdict.stale.join(", ")}`);
  if (verdict.unknown.length > 0) console.log(`\nlisted but not run: ${verdict.unknown.join(", ")}`);
  const ok = results.length > 0 && verdict.unexpected.length + verdict.stale.length + verdict.unknown.length === 0;
  console.log(
    `\n${results.filter((r) => !failed(r)).length} passed, ${results.filter(failed).length} failed (expected: ${ok ? "yes" : "no"})`,
  );
  process.exitCode = ok ? 0 : 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
  await proxy.close();
}
