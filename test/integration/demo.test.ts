import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { spawnPitcrew } from "../helpers/process.ts";
import { startFakeBotApi } from "../helpers/fake-bot-api.ts";

describe("pitcrew demo", () => {
  it("runs the whole loop offline — alert, plan, pull request, approval, merge, resolve — and cleans up after itself", async () => {
    // Whatever the caller's environment says, the demo configures its own control plane.
    const p = spawnPitcrew(["demo"], {
      DATABASE_URL: "mysql://nobody@127.0.0.1:1/none",
      NATS_URL: "nats://127.0.0.1:1",
    });
    const exit = await p.exited;
    const out = p.stdout();
    expect(exit, `${out}\n${p.stderr()}`).toEqual({ code: 0, signal: null });
    const dir = /in (\/\S+pitcrew-demo-\S+)/.exec(out)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
    const incident = /incident (inc_[0-9A-Z]+)/.exec(out)?.[1];
    expect(incident).toBeDefined();

    // Each step, in order.
    const steps = [...out.matchAll(/^\s+[\d.]+s\s+(\d)\. /gm)].map((m) => Number(m[1]));
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(out).toContain("Approved-via: policy");
    expect(out).toMatch(/plan: crashloop-after-deploy \(rules planner, confidence 1, medium risk\)/);
    expect(out).toMatch(/runner: opened pull request #1/);
    expect(out).toMatch(/Approved by policy — the demo sets AUTO_APPROVE_MAX_RISK=medium/);
    // The real change on main: the bad image rolled back, and the merge commit's trailers.
    expect(out).toContain("-          image: registry.example.com/checkout:v1.4.2");
    expect(out).toContain("+          image: registry.example.com/checkout:v1.4.1");
    expect(out).toContain("Approved-by: policy");
    expect(out).toContain(`Pitcrew-Incident: ${incident}`);
    expect(out).toMatch(
      new RegExp(
        `Incident ${incident} resolved: alert resolved \\S+ after pull request #1 \\(crashloop-after-deploy, merged [0-9a-f]{7}\\), approved by policy`,
      ),
    );

    // The timeline, from detection to the resolve, with the merge before the resolve.
    const timeline = out
      .slice(out.indexOf("Timeline:"))
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[1])
      .filter(Boolean);
    const order = [
      "incident.detected",
      "incident.analyzing",
      "incident.planned",
      "incident.fixing",
      "task.pr_opened",
      "approval.approved",
      "incident.approved",
      "pr.merged",
      "incident.verifying",
      "incident.resolved",
    ];
    expect(order.map((t) => timeline.indexOf(t)).every((i, k, all) => i >= 0 && (k === 0 || i > all[k - 1]!))).toBe(
      true,
    );
    expect(out).toMatch(/Done in [\d.]+ s\./);
  });
});

describe("pitcrew demo with Telegram", () => {
  it("waits for an approver's button press, merges with the approver named in the commit, and resolves with the fix named", async () => {
    const token = "123456:DemoTokenForTheFakeBotApi_0123";
    const chat = -1001234567890;
    const bot = await startFakeBotApi(token);
    // The approver presses Approve as soon as the approval message with its buttons arrives.
    bot.onCall = (call, api) => {
      const keyboard = (
        call.body.reply_markup as { inline_keyboard?: Array<Array<{ callback_data: string }>> } | undefined
      )?.inline_keyboard;
      const approve = keyboard?.flat().find((b) => b.callback_data.startsWith("v1:a:"));
      if (call.method !== "sendMessage" || !approve) return;
      const message = api.messages(chat).at(-1)!;
      api.push({
        callback_query: {
          id: "cq-1",
          from: { id: 4242, is_bot: false, first_name: "Alice", username: "alice" },
          message,
          chat_instance: "demo",
          data: approve.callback_data,
        },
      });
    };
    try {
      const p = spawnPitcrew(["demo"], {
        TELEGRAM_BOT_TOKEN: token,
        TELEGRAM_CHAT_ID: String(chat),
        TELEGRAM_APPROVER_IDS: "4242",
        TELEGRAM_API_ROOT: bot.url,
      });
      const exit = await p.exited;
      const out = p.stdout();
      expect(exit, `${out}\n${p.stderr()}`).toEqual({ code: 0, signal: null });
      const incident = /incident (inc_[0-9A-Z]+)/.exec(out)![1]!;
      expect(out).toMatch(/6\. Approved by @alice \(tg:4242\) via telegram/);
      expect(out).toContain("Approved-by: @alice (tg:4242)");
      expect(out).toContain(`Pitcrew-Incident: ${incident}`);
      expect(out).toMatch(
        new RegExp(`Incident ${incident} resolved: .*pull request #1.*approved by @alice \\(tg:4242\\) via telegram`),
      );
      const timeline = out
        .slice(out.indexOf("Timeline:"))
        .split("\n")
        .slice(1)
        .map((l) => l.trim().split(/\s+/)[1])
        .filter(Boolean);
      const order = [
        "incident.detected",
        "incident.planned",
        "task.pr_opened",
        "approval.requested",
        "incident.proposed",
        "approval.approved",
        "incident.approved",
        "pr.merged",
        "incident.verifying",
        "incident.resolved",
      ];
      expect(
        order.map((t) => timeline.indexOf(t)).every((i, k, all) => i >= 0 && (k === 0 || i > all[k - 1]!)),
        timeline.join(" "),
      ).toBe(true);
      // What Telegram saw: the approval message with its four-button row for this approval, and the
      // press answered. (The edit after the decision is notify.test.ts's; the demo stops at once.)
      const asked = bot.calls.find(
        (c) => c.method === "sendMessage" && JSON.stringify(c.body.reply_markup ?? {}).includes("v1:a:"),
      );
      expect(String(asked?.body.text)).toContain("Approval needed");
      expect(String(asked?.body.text)).toContain("+          image: registry.example.com/checkout:v1.4.1");
      expect(bot.calls.some((c) => c.method === "answerCallbackQuery" && c.body.callback_query_id === "cq-1")).toBe(
        true,
      );
    } finally {
      await bot.close();
    }
  });
});
