import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { spawnPitcrew } from "../helpers/process.ts";

// A one-off command answers without loading a database driver (better-sqlite3, mysql2, kysely):
// the process runs with a resolve hook that writes down every module it loads.

const dir = mkdtempSync(join(tmpdir(), "pitcrew-cli-imports-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const HOOK = new URL("../fixtures/module-log.mjs", import.meta.url).pathname;
const DRIVER = /\/node_modules\/(better-sqlite3|mysql2|kysely)\//;

async function modulesLoadedBy(args: string[]): Promise<{ code: number | null; modules: string[] }> {
  const log = join(dir, `${args.join("-")}.log`);
  const p = spawnPitcrew(args, { DATA_DIR: join(dir, "data"), NODE_OPTIONS: `--import ${HOOK}`, MODULE_LOG: log });
  const { code } = await p.exited;
  const modules = readFileSync(log, "utf8").trim().split("\n");
  return { code, modules };
}

describe("one-off commands", () => {
  for (const args of [["--version"], ["token"], ["skills", "validate"]])
    it(`pitcrew ${args.join(" ")} loads no database driver`, async () => {
      const { code, modules } = await modulesLoadedBy(args);
      expect(code).toBe(0);
      // The hook saw the command's own code, so an empty list cannot pass for "no driver".
      expect(modules.some((m) => m.endsWith("/src/main/cli.ts"))).toBe(true);
      expect(modules.filter((m) => DRIVER.test(m))).toEqual([]);
    });

  it("pitcrew migrate does load the SQLite driver (the check sees drivers)", async () => {
    const { code, modules } = await modulesLoadedBy(["migrate"]);
    expect(code).toBe(0);
    expect(modules.some((m) => m.includes("/node_modules/better-sqlite3/"))).toBe(true);
  });
});
