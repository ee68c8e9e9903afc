import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, destination };
}

describe("createLogger", () => {
  it("writes one JSON object per line by default", () => {
    const { lines, destination } = capture();
    createLogger({ level: "info", destination }).info({ incidentId: "inc_1" }, "incident opened");
    expect(JSON.parse(lines.join(""))).toMatchObject({ level: 30, incidentId: "inc_1", msg: "incident opened" });
  });

  it("LOG_FORMAT=pretty: a readable line with the level, the message and the fields below, secrets still redacted", () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: "info", format: "pretty", destination });
    log.info({ incidentId: "inc_1", req: { headers: { authorization: "Bearer abc123" } } }, "incident opened");
    const out = lines.join("");
    expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(pitcrew\): incident opened\n/);
    expect(out).toContain('    incidentId: "inc_1"\n');
    expect(out).not.toContain("abc123");
    expect(() => JSON.parse(out)).toThrow();
  });

  it("redacts credentials in request headers and secret-named fields", () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger({ level: "info", destination });
    log.info(
      {
        req: { headers: { authorization: "Bearer abc123", host: "x" } },
        nats: { token: "tok-9", password: "pw-7" },
        webhook: { secret: "whsec_1" },
      },
      "hello",
    );
    const out = lines.join("");
    expect(out).toContain('"host":"x"');
    for (const secret of ["abc123", "tok-9", "pw-7", "whsec_1"]) expect(out).not.toContain(secret);
    expect(out).toContain("***");
  });
});
