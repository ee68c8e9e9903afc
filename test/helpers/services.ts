import { accessSync, constants } from "node:fs";
import { connect as netConnect } from "node:net";
import { delimiter, join } from "node:path";

// Integration tests find MySQL/MariaDB and NATS through MYSQL_URL / NATS_URL. When a service is
// absent its tests are skipped, loudly; when CI is set, an absent service fails the run instead.

export const MYSQL_URL = process.env.MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
export const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const IN_CI = !!process.env.CI && process.env.CI !== "false" && process.env.CI !== "0";

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = netConnect({ host: u.hostname, port: Number(u.port || defaultPort) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

async function require(name: string, url: string, port: number): Promise<boolean> {
  const ok = await reachable(url, port);
  if (ok) return true;
  const safe = url.replace(/\/\/[^@/]*@/, "//***@");
  if (IN_CI) throw new Error(`${name} is required in CI but not reachable at ${safe}`);
  process.stderr.write(
    `\n!!!!!!!! SKIPPING ${name} TESTS: nothing answers at ${safe} (set ${name === "MySQL" ? "MYSQL_URL" : "NATS_URL"}) !!!!!!!!\n\n`,
  );
  return false;
}

export const hasMysql = (): Promise<boolean> => require("MySQL", MYSQL_URL, 3306);
export const hasNats = (): Promise<boolean> => require("NATS", NATS_URL, 4222);

/** A command-line tool (kubectl, promtool) on the PATH; absent: skipped loudly, or failing in CI. */
export function hasTool(name: string): boolean {
  const found = (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return dir !== "";
    } catch {
      return false;
    }
  });
  if (found) return true;
  if (IN_CI) throw new Error(`${name} is required in CI but is not on the PATH`);
  process.stderr.write(`\n!!!!!!!! SKIPPING ${name} TESTS: ${name} is not on the PATH !!!!!!!!\n\n`);
  return false;
}
