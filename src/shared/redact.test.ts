import { describe, expect, it } from "vitest";
import { redactSecrets, redactUrl } from "./redact.ts";

describe("redactUrl", () => {
  it.each([
    ["mysql://root:hunter2@db:3306/pitcrew", "mysql://root:***@db:3306/pitcrew"],
    ["mysql://app:p%40ss%2Fword@db/x?ssl=true", "mysql://app:***@db/x?ssl=true"],
    ["nats://s3cr3t-token@nats:4222", "nats://***@nats:4222"],
    ["tls://s3cr3t-token@nats:4222", "tls://***@nats:4222"],
    ["nats://user:pw@nats:4222", "nats://user:***@nats:4222"],
    ["https://hooks.example.com/path", "https://hooks.example.com/path"],
  ])("masks the credentials of %s", (url, safe) => {
    expect(redactUrl(url)).toBe(safe);
  });

  it("keeps a user name without a password on database URLs", () => {
    expect(redactUrl("mysql://root@127.0.0.1:3306/test")).toBe("mysql://root@127.0.0.1:3306/test");
  });

  it("masks the userinfo of a string that is not a parseable URL", () => {
    const out = redactUrl("//root:hunter2@db/x");
    expect(out).toBe("//***@db/x");
    expect(out).not.toContain("hunter2");
  });
});

describe("redactSecrets", () => {
  it("replaces values under secret-looking keys at any depth, including inside arrays", () => {
    const input = {
      token: "x",
      nested: { password: "y", host: "db-1", deeper: { apiKey: "k", "api-key": "k2", private_key: "pk" } },
      headers: [{ Authorization: "Bearer abc", Cookie: "sid=1", accept: "*/*" }],
      clientSecret: "s",
      credentials: { user: "u" },
      kept: "z",
      count: 3,
    };
    expect(redactSecrets(input)).toEqual({
      token: "***",
      nested: { password: "***", host: "db-1", deeper: { apiKey: "***", "api-key": "***", private_key: "***" } },
      headers: [{ Authorization: "***", Cookie: "***", accept: "*/*" }],
      clientSecret: "***",
      credentials: "***",
      kept: "z",
      count: 3,
    });
  });

  it("leaves the input untouched and returns a copy", () => {
    const input = { token: "x", nested: { password: "y" } };
    const out = redactSecrets(input);
    expect(input).toEqual({ token: "x", nested: { password: "y" } });
    expect(out.nested).not.toBe(input.nested);
  });

  it("keeps null and undefined secrets as they are, so absence stays visible", () => {
    expect(redactSecrets({ token: null, password: undefined })).toEqual({ token: null, password: undefined });
  });

  it("passes primitives through", () => {
    expect(redactSecrets("token")).toBe("token");
    expect(redactSecrets(42)).toBe(42);
    expect(redactSecrets(null)).toBeNull();
  });

  it("stops descending past 20 levels instead of overflowing the stack, dropping what is deeper", () => {
    let deep: Record<string, unknown> = { password: "bottom" };
    for (let i = 0; i < 5000; i++) deep = { next: deep };
    expect(() => redactSecrets(deep)).not.toThrow();
    expect(JSON.stringify(redactSecrets(deep))).not.toContain("bottom");
  });

  it("does not mistake counters and ordinary words for secrets", () => {
    const input = {
      input_tokens: 120,
      output_tokens: 40,
      tokenizer: "cl100k",
      bypass: false,
      compass: "n",
      github_token: "ghp_x",
      webhookSecret: "w",
    };
    expect(redactSecrets(input)).toEqual({
      input_tokens: 120,
      output_tokens: 40,
      tokenizer: "cl100k",
      bypass: false,
      compass: "n",
      github_token: "***",
      webhookSecret: "***",
    });
  });
});
