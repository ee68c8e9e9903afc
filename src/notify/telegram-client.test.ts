import { TelegramError } from "telegraf";
import { describe, expect, it } from "vitest";
import { classifyTelegramError } from "./telegram-client.ts";

const botApi = (error_code: number, description: string, parameters?: Record<string, unknown>) =>
  new TelegramError({ error_code, description, ...(parameters ? { parameters } : {}) } as never);

describe("classifyTelegramError", () => {
  it("waits the retry_after of a 429", () => {
    expect(classifyTelegramError(botApi(429, "Too Many Requests: retry after 35", { retry_after: 35 }))).toMatchObject({
      kind: "rate_limited",
      retryAfterMs: 35_000,
    });
  });

  it("retries server errors, network errors, timeouts and a wrong token or API root", () => {
    expect(classifyTelegramError(botApi(502, "Bad Gateway")).kind).toBe("unavailable");
    expect(
      classifyTelegramError(
        Object.assign(new Error("request failed, reason: connect ECONNREFUSED"), {
          name: "FetchError",
          code: "ECONNREFUSED",
        }),
      ).kind,
    ).toBe("unavailable");
    expect(
      classifyTelegramError(Object.assign(new Error("The operation was aborted"), { name: "AbortError" })),
    ).toMatchObject({ kind: "unavailable", description: expect.stringContaining("timed out") });
    expect(classifyTelegramError(botApi(401, "Unauthorized")).kind).toBe("unavailable");
    expect(classifyTelegramError(botApi(404, "Not Found")).kind).toBe("unavailable");
  });

  it("treats an unchanged message as done and a deleted one as gone", () => {
    expect(
      classifyTelegramError(
        botApi(
          400,
          "Bad Request: message is not modified: specified new message content and reply markup are exactly the same",
        ),
      ).kind,
    ).toBe("not_modified");
    expect(classifyTelegramError(botApi(400, "Bad Request: message to edit not found")).kind).toBe("gone");
  });

  it("gives up on other refusals with Telegram's description", () => {
    expect(classifyTelegramError(botApi(400, "Bad Request: chat not found"))).toEqual({
      kind: "refused",
      description: "400 Bad Request: chat not found",
    });
    expect(classifyTelegramError(botApi(403, "Forbidden: bot was kicked from the supergroup chat")).kind).toBe(
      "refused",
    );
  });
});
