import { describe, expect, it } from "vitest";
import {
  approvalRef,
  buttonData,
  deciderOf,
  escapeHtml,
  fitMessage,
  parseCallbackData,
  parseCommand,
  TelegramUpdate,
} from "./telegram-parse.ts";

describe("parseCallbackData", () => {
  it("reads the four button formats as a verb and an approval id", () => {
    for (const verb of ["approve", "reject", "details", "rebuild"] as const) {
      expect(parseCallbackData(buttonData(verb, "apr_01JABCDEF_3"))).toEqual({
        ok: true,
        verb,
        approvalId: "apr_01JABCDEF_3",
      });
    }
    expect(["a", "r", "d", "b"].map((v) => parseCallbackData(`v1:${v}:apr_1`))).toEqual(
      ["approve", "reject", "details", "rebuild"].map((verb) => ({ ok: true, verb, approvalId: "apr_1" })),
    );
  });

  it("treats any other data as forged or stale", () => {
    const bad = [
      undefined,
      "",
      "v2:a:apr_1",
      "v1:z:apr_1",
      "v1:a:",
      "v1:a:inc_1",
      "v1:a:apr_1:more",
      "v1:a:apr_../x",
      `v1:a:apr_${"x".repeat(37)}`,
      "v1:a:apr_é",
      `v1:a:apr_${"1".repeat(60)}`,
    ];
    for (const data of bad) expect(parseCallbackData(data).ok, String(data)).toBe(false);
  });
});

describe("parseCommand", () => {
  it("reads /cmd, /cmd@Bot and their arguments", () => {
    expect(parseCommand("/status")).toEqual({ name: "status", bot: null, args: "" });
    expect(parseCommand("/Reject@pitcrew_bot apr_1  not now\nsee thread")).toEqual({
      name: "reject",
      bot: "pitcrew_bot",
      args: "apr_1  not now\nsee thread",
    });
    expect(parseCommand("  /pause   freeze ")).toEqual({ name: "pause", bot: null, args: "freeze" });
  });

  it("ignores text that is not a command", () => {
    for (const t of [undefined, "", "status", "hello /status", "/", "/ status", "/sta-tus"])
      expect(parseCommand(t)).toBeNull();
  });
});

describe("deciderOf", () => {
  it("names the person by username and id, and keeps both for the event", () => {
    expect(deciderOf({ id: 42, username: "alice", first_name: "Alice" }, -100)).toEqual({
      subject: "@alice (tg:42)",
      actor: "telegram:42",
      channel: "telegram",
      data: { telegram: { userId: 42, username: "alice", chatId: -100 } },
    });
    expect(deciderOf({ id: 7, first_name: "Bo" }, null).subject).toBe("Bo (tg:7)");
  });
});

describe("escapeHtml and fitMessage", () => {
  it("escapes the characters Telegram's HTML mode reserves", () => {
    expect(escapeHtml(`<b>a & "b"</b>`)).toBe(`&lt;b&gt;a &amp; &quot;b&quot;&lt;/b&gt;`);
  });

  it("cuts to the limit without splitting an entity", () => {
    const html = escapeHtml(`${"a".repeat(10)}&&&&`);
    const cut = fitMessage(html, 14);
    expect(cut.length).toBeLessThanOrEqual(14);
    expect(cut).toMatch(/^a{10}(&amp;)?…$/);
    expect(fitMessage("short")).toBe("short");
  });

  it("never cuts inside a tag and closes the tags a cut left open", () => {
    const html = `<b>Incidents</b>\n<code>${"x".repeat(50)}</code> <a href="https://e/x">${"y".repeat(50)}</a>`;
    for (const max of [20, 40, 60, 80, 100]) {
      const cut = fitMessage(html, max);
      expect(cut.length).toBeLessThanOrEqual(max);
      const tags = [...cut.matchAll(/<(\/?)([a-z]+)[^>]*>/g)].map((m) => `${m[1]}${m[2]}`);
      // Balanced: every opened tag is closed, in order.
      const stack: string[] = [];
      for (const t of tags) t.startsWith("/") ? expect(stack.pop()).toBe(t.slice(1)) : stack.push(t);
      expect(stack).toEqual([]);
      expect(cut).not.toMatch(/<[^>]*$/);
    }
  });
});

describe("approvalRef and TelegramUpdate", () => {
  it("tells approval ids from incident ids", () => {
    expect(approvalRef("apr_01J")).toEqual({ approvalId: "apr_01J" });
    expect(approvalRef("inc_01J")).toEqual({ incidentId: "inc_01J" });
    expect(approvalRef("tsk_01J")).toBeNull();
  });

  it("accepts Telegram's update shapes and refuses what has no update_id", () => {
    expect(TelegramUpdate.safeParse({ update_id: 1, edited_message: { message_id: 1 } }).success).toBe(true);
    expect(
      TelegramUpdate.safeParse({
        update_id: 2,
        callback_query: {
          id: "q",
          from: { id: 1, is_bot: false, first_name: "A" },
          chat_instance: "x",
          data: "v1:a:apr_1",
        },
      }).success,
    ).toBe(true);
    expect(TelegramUpdate.safeParse({ message: { message_id: 1 } }).success).toBe(false);
  });
});
