import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";

describe("createLogger", () => {
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
