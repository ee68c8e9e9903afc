import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  describeFailure,
  failed,
  judge,
  loadExpectedFailures,
  runSuite,
  startTokenProxy,
  suiteMissing,
  SUITES,
  suiteVersion,
  type ScenarioResult,
} from "../conformance/suite.ts";
import { freePort, spawnPitcrew, type Spawned } from "../helpers/process.ts";
import { waitFor } from "../helpers/wait.ts";

// The official MCP conformance suite (@modelcontextprotocol/conformance) runs its server scenarios
// against a real `pitcrew serve`, on the Node 22 binary it needs (see test/conformance/): the
// released suite (2025-era clients), then the 2026-07-28 requirements of its 0.2 line. Every
// failure must be listed in the suite's expected-failures file with its reason, and only scenarios
// that need the suite's own fixtures may be listed there.

const IN_CI = !!process.env.CI && process.env.CI !== "false" && process.env.CI !== "0";
const TOKEN = "conformance-token-0123456789abcdef";

for (const suite of SUITES) {
  const missing = suiteMissing(suite);
  const listFile = `test/conformance/${suite.expectedFailures.split("/").pop()}`;

  if (missing && !IN_CI) {
    process.stderr.write(`\n!!!!!!!! SKIPPING THE MCP CONFORMANCE SUITE (${suite.name}): ${missing} !!!!!!!!\n\n`);
  }

  describe.skipIf(!!missing && !IN_CI)(
    `the official MCP conformance suite (${suite.name}) against pitcrew serve`,
    () => {
      const expected = loadExpectedFailures(suite.expectedFailures);
      let dir = "";
      let proxy: Awaited<ReturnType<typeof startTokenProxy>> | undefined;
      let pitcrew: Spawned | undefined;
      let run: Awaited<ReturnType<typeof runSuite>>;
      let results: ScenarioResult[];
      let verdict: ReturnType<typeof judge>;

      beforeAll(async () => {
        if (missing) throw new Error(`the MCP conformance suite is required in CI: ${missing}`);
        dir = mkdtempSync(join(tmpdir(), "pitcrew-conformance-"));
        const port = await freePort();
        proxy = await startTokenProxy({ host: "127.0.0.1", port }, TOKEN);
        // The proxy is the address clients use, so it is the public URL (its origin is Pitcrew's own).
        pitcrew = spawnPitcrew(["serve"], {
          PORT: String(port),
          HOST: "127.0.0.1",
          PUBLIC_URL: proxy.origin,
          DATA_DIR: join(dir, "data"),
          MCP_TOKENS: JSON.stringify([{ name: "conformance", token: TOKEN, scopes: ["admin"] }]),
        });
        await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 60_000, 100).catch((err) => {
          throw new Error(`pitcrew did not start: ${err}\n${pitcrew!.stderr()}\n${pitcrew!.stdout()}`);
        });
        const out = join(dir, "results");
        mkdirSync(out);
        run = await runSuite(`${proxy.origin}/mcp`, out, 150_000, suite);
        results = run.results;
        verdict = judge(results, expected);
        const passed = results.filter((r) => !failed(r)).length;
        console.log(
          `conformance ${suiteVersion(suite)} (${suite.name}): ${passed} of ${results.length} scenarios passed; expected to fail: ${results.length - passed}`,
        );
      }, 240_000);

      afterAll(async () => {
        pitcrew?.child.kill("SIGTERM");
        await Promise.race([pitcrew?.exited, new Promise((r) => setTimeout(r, 15_000))]);
        pitcrew?.child.kill("SIGKILL");
        await proxy?.close();
        if (dir) rmSync(dir, { recursive: true, force: true });
      });

      it("runs the suite's server scenarios, including the lifecycle, tools and DNS-rebinding ones", () => {
        expect(run.exitCode, run.output).not.toBeNull();
        const core =
          suite.name === "2026-07-28"
            ? ["server-stateless", "tools-list", "sep-2164-resource-not-found", "http-header-validation"]
            : ["server-initialize", "ping", "tools-list"];
        expect(results.map((r) => r.scenario)).toEqual(expect.arrayContaining([...core, "dns-rebinding-protection"]));
      });

      it("passes every scenario that does not need the suite's own fixtures", () => {
        expect(verdict.unexpected.map(describeFailure).join("\n"), `failing scenarios not in ${listFile}`).toBe("");
      });

      it("still fails every scenario listed as expected to fail (no stale entry)", () => {
        expect(verdict.stale, `passing scenarios listed in ${listFile}: remove them`).toEqual([]);
      });

      it("lists only scenarios the suite ran, each with its reason", () => {
        expect(verdict.unknown, "listed scenarios the suite does not have").toEqual([]);
        expect(expected.unexplained, "listed without a reason").toEqual([]);
      });
    },
  );
}
