import { execFileSync, spawn } from "node:child_process";
import {
  accessSync,
  readFileSync,
  constants,
  cpSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { build, distIsFresh } from "../../bin/build.mjs";
import { freePort } from "../helpers/process.ts";
import { waitFor } from "../helpers/wait.ts";

// The build output runs on its own, laid out as the Docker image's runtime stage lays it out:
// dist/, bin/, skills/ and package.json, no sources. And bin/pitcrew.mjs's choice between dist/
// and the sources follows the files' times.

const ROOT = new URL("../../", import.meta.url).pathname;
const HOOK = new URL("../fixtures/module-log.mjs", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "pitcrew-build-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("dist/ is fresh", () => {
  const at = (path: string, seconds: number) => utimesSync(path, seconds, seconds);

  it("only when a complete build is newer than every source file and folder", () => {
    const root = join(dir, "fresh");
    mkdirSync(join(root, "src", "main"), { recursive: true });
    writeFileSync(join(root, "src", "main", "cli.ts"), "");
    at(join(root, "src", "main", "cli.ts"), 1000);
    at(join(root, "src", "main"), 1000);
    at(join(root, "src"), 1000);
    expect(distIsFresh(root)).toBe(false); // no build

    mkdirSync(join(root, "dist"));
    writeFileSync(join(root, "dist", ".built"), "");
    at(join(root, "dist", ".built"), 2000);
    expect(distIsFresh(root)).toBe(true);

    at(join(root, "src", "main", "cli.ts"), 3000); // an edit after the build
    expect(distIsFresh(root)).toBe(false);
    at(join(root, "src", "main", "cli.ts"), 1000);
    writeFileSync(join(root, "src", "main", "cli.test.ts"), ""); // a test file is not a source...
    at(join(root, "src", "main", "cli.test.ts"), 3000);
    at(join(root, "src", "main"), 1000);
    expect(distIsFresh(root)).toBe(true);
    rmSync(join(root, "src", "main", "cli.test.ts"));
    at(join(root, "src", "main"), 3000); // ...but a file removed changes its folder
    expect(distIsFresh(root)).toBe(false);

    rmSync(join(root, "src"), { recursive: true }); // an image: the build, no sources
    expect(distIsFresh(root)).toBe(true);
  });
});

describe("the build output", () => {
  it("runs without the sources: --version, skills validate, serve with /healthz, /readyz and the console's assets", async () => {
    const app = join(dir, "app");
    // Emit only: the type check is CI's typecheck step; this is about the output running.
    await build(join(app, "dist"), { typeCheck: false });
    for (const p of ["package.json", "bin", "skills"]) cpSync(join(ROOT, p), join(app, p), { recursive: true });
    symlinkSync(join(ROOT, "node_modules"), join(app, "node_modules"));
    // Files the code reads from beside itself came along.
    accessSync(join(app, "dist/runner/askpass.sh"), constants.X_OK);
    const node = (...args: string[]) =>
      execFileSync(process.execPath, args, { cwd: app, env: { PATH: process.env.PATH } });

    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    expect(node("dist/src/main/cli.js", "--version").toString().trim()).toBe(version);
    // bin/pitcrew.mjs runs dist/ here (no sources are newer: there are none), without tsx.
    const log = join(dir, "bin-modules.log");
    const viaBin = execFileSync(process.execPath, ["bin/pitcrew.mjs", "--version"], {
      cwd: app,
      env: { PATH: process.env.PATH, NODE_OPTIONS: `--import ${HOOK}`, MODULE_LOG: log },
    });
    expect(viaBin.toString().trim()).toBe(version);
    const loaded = readFileSync(log, "utf8").trim().split("\n");
    expect(loaded).toContain(pathToFileURL(join(app, "dist/src/main/cli.js")).href);
    expect(loaded.filter((m) => m.includes("/node_modules/tsx/") || m.endsWith(".ts"))).toEqual([]);
    expect(node("dist/src/main/cli.js", "skills", "validate").toString()).toMatch(
      /\d+ skill\(s\) valid, 0 problem\(s\)/,
    );

    const port = await freePort();
    const child = spawn(process.execPath, ["dist/src/main/cli.js", "serve"], {
      cwd: app,
      env: { PATH: process.env.PATH, PORT: String(port), DATA_DIR: join(dir, "data"), LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (b) => (stderr += b));
    const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    try {
      const url = `http://127.0.0.1:${port}`;
      await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok === true, 30_000, 50);
      expect(await (await fetch(`${url}/readyz`)).json()).toEqual({
        status: "ready",
        checks: { store: "ok", queue: "ok" },
      });
      const login = await (await fetch(`${url}/login`)).text();
      const assets = [...login.matchAll(/\/assets\/[\w.-]+\.(?:css|js)/g)].map((m) => m[0]);
      expect(assets.length).toBeGreaterThan(0);
      for (const a of assets) expect((await fetch(`${url}${a}`)).status, a).toBe(200);
      expect(await (await fetch(`${url}/metrics`)).text()).toContain("pitcrew_ready 1");
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited, stderr).toBe(0);
  }, 240_000);
});
