import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./load.ts";

const load = (env: Record<string, string>) => loadConfig(env);
const errorOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error("expected a ConfigError");
};

describe("loadConfig", () => {
  it("runs embedded with no configuration at all", () => {
    const c = load({});
    expect(c.port).toBe(18088);
    expect(c.database).toEqual({ dialect: "sqlite", file: expect.stringMatching(/\/data\/pitcrew\.db$/) });
    expect(c.nats).toBeUndefined();
    expect(c.bodyLimit).toBe(1_048_576);
    expect(c.task).toEqual({ ackWaitMs: 30_000, maxDeliver: 5 });
    expect(c.runner.concurrency).toBe(2);
    expect(c.publicUrl).toBe("http://localhost:18088");
    expect(c.logFormat).toBe("json");
    expect(load({ LOG_FORMAT: "pretty" }).logFormat).toBe("pretty");
  });

  it("cuts slow request bodies off after BODY_TIMEOUT, 30 s unless set; REQUEST_TIMEOUT is its former name", () => {
    expect(load({}).requestTimeoutMs).toBe(30_000);
    expect(load({ BODY_TIMEOUT: "5s" }).requestTimeoutMs).toBe(5000);
    expect(load({ REQUEST_TIMEOUT: "45s" }).requestTimeoutMs).toBe(45_000);
    expect(load({ BODY_TIMEOUT: "5s", REQUEST_TIMEOUT: "45s" }).requestTimeoutMs).toBe(5000);
    expect(errorOf({ BODY_TIMEOUT: "500ms" })).toMatch(/^BODY_TIMEOUT: .*at least 1000 ms/);
    expect(errorOf({ REQUEST_TIMEOUT: "soon" })).toMatch(/^REQUEST_TIMEOUT: .*\(got "soon"\)/);
  });

  it("goes distributed with a MySQL URL and NATS servers", () => {
    const c = load({
      DATABASE_URL: "mysql://u:p@db:3306/pitcrew",
      NATS_URL: "nats://a:4222, nats://b:4222",
      NATS_TOKEN: "t",
    });
    expect(c.database).toEqual({ dialect: "mysql", url: "mysql://u:p@db:3306/pitcrew", poolSize: 10 });
    expect(c.nats).toMatchObject({
      servers: ["nats://a:4222", "nats://b:4222"],
      token: "t",
      prefix: "pitcrew",
      replicas: 1,
    });
  });

  it("accepts a sqlite: URL for a custom file", () => {
    expect(load({ DATABASE_URL: "sqlite:/var/lib/pitcrew/x.db" }).database).toEqual({
      dialect: "sqlite",
      file: "/var/lib/pitcrew/x.db",
    });
  });

  it("parses durations in every unit", () => {
    const c = load({ TASK_ACK_WAIT: "2m", EVENTS_MAX_AGE: "3d", HEARTBEAT_INTERVAL: "1500ms", OUTBOX_INTERVAL: "1s" });
    expect(c.task.ackWaitMs).toBe(120_000);
    expect(c.eventsMaxAgeMs).toBe(3 * 86_400_000);
    expect(c.runner.heartbeatMs).toBe(1500);
    expect(c.outbox.intervalMs).toBe(1000);
  });

  it("names the variable and the bad value", () => {
    expect(errorOf({ PORT: "80a" })).toMatch(/^PORT: expected a whole number from 1 to 65535 \(got "80a"\)$/);
    expect(errorOf({ PORT: "70000" })).toMatch(/^PORT: /);
    expect(errorOf({ TASK_ACK_WAIT: "soon" })).toMatch(/^TASK_ACK_WAIT: expected a duration/);
    expect(errorOf({ LOG_LEVEL: "loud" })).toMatch(/^LOG_LEVEL: /);
    expect(errorOf({ LOG_FORMAT: "colour" })).toBe('LOG_FORMAT: expected "json" or "pretty" (got "colour")');
    expect(errorOf({ RUNNER_POOL: "Bad Pool" })).toMatch(/^RUNNER_POOL: /);
    expect(errorOf({ PUBLIC_URL: "not a url" })).toMatch(/^PUBLIC_URL: /);
  });

  it("keeps every problem on one line", () => {
    const msg = errorOf({ PORT: "x", RUNNER_CONCURRENCY: "0" });
    expect(msg.split("\n")).toHaveLength(1);
    expect(msg).toMatch(/PORT: .*; RUNNER_CONCURRENCY: /);
  });

  it("never echoes secret-bearing values", () => {
    const msg = errorOf({ DATABASE_URL: "postgres://root:hunter2@db/x" });
    expect(msg).toMatch(/^DATABASE_URL: /);
    expect(msg).not.toContain("hunter2");
    expect(errorOf({ NATS_URL: "http://tok3n@nats" })).not.toContain("tok3n");
  });

  it("requires NATS user and password together", () => {
    expect(errorOf({ NATS_URL: "nats://n:4222", NATS_USER: "u" })).toMatch(/NATS_USER\/NATS_PASSWORD/);
  });

  it("configures Telegram: routes, approvers, polling over http and a webhook over https", () => {
    const token = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345";
    const c = load({
      TELEGRAM_BOT_TOKEN: token,
      TELEGRAM_CHAT_ID: "-1001",
      TELEGRAM_ROUTES: "namespace=payments:-100123, severity=critical:@oncall_team",
      TELEGRAM_APPROVER_IDS: "42, 7",
    });
    expect(c.telegram).toEqual({
      token,
      defaultChat: "-1001",
      routes: [
        { label: "namespace", value: "payments", chat: "-100123" },
        { label: "severity", value: "critical", chat: "@oncall_team" },
      ],
      approverIds: [42, 7],
      webhookSecret: undefined,
      apiRoot: "https://api.telegram.org",
      mode: "polling",
    });
    expect(c.notify.minSeverity).toBe("warning");
    expect(load({}).telegram).toBeUndefined();
    expect(
      load({
        TELEGRAM_BOT_TOKEN: token,
        TELEGRAM_CHAT_ID: "-1",
        PUBLIC_URL: "https://p.example.com",
        TELEGRAM_WEBHOOK_SECRET: "s".repeat(16),
      }).telegram?.mode,
    ).toBe("webhook");
    expect(errorOf({ TELEGRAM_BOT_TOKEN: token, TELEGRAM_CHAT_ID: "-1", PUBLIC_URL: "https://p.example.com" })).toMatch(
      /^TELEGRAM_WEBHOOK_SECRET: required/,
    );
    expect(errorOf({ TELEGRAM_BOT_TOKEN: token })).toMatch(/^TELEGRAM_CHAT_ID: required/);
    expect(errorOf({ TELEGRAM_CHAT_ID: "-1" })).toMatch(/^TELEGRAM_BOT_TOKEN: required when TELEGRAM_CHAT_ID/);
    expect(errorOf({ TELEGRAM_BOT_TOKEN: token, TELEGRAM_CHAT_ID: "-1", TELEGRAM_ROUTES: "payments" })).toMatch(
      /^TELEGRAM_ROUTES: /,
    );
    expect(errorOf({ TELEGRAM_BOT_TOKEN: token, TELEGRAM_CHAT_ID: "-1", TELEGRAM_APPROVER_IDS: "@alice" })).toMatch(
      /^TELEGRAM_APPROVER_IDS: /,
    );
    const bad = errorOf({ TELEGRAM_BOT_TOKEN: "123:short-secret-value" });
    expect(bad).toMatch(/^TELEGRAM_BOT_TOKEN: /);
    expect(bad).not.toContain("short-secret-value");
  });
});
