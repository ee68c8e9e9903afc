import { describe, expect, it } from "vitest";
import { createRateLimiter } from "./rate-limit.ts";

/** Sends to `chats` round-robin whenever allowed, stepping time by 10 ms; returns the send times. */
function drive(chats: string[], count: number) {
  const limiter = createRateLimiter();
  const sent: Array<{ chat: string; at: number }> = [];
  let i = 0;
  for (let now = 0; sent.length < count && now < 3_600_000; now += 10) {
    for (let tries = 0; tries < chats.length && sent.length < count; tries++) {
      const chat = chats[i++ % chats.length]!;
      if (limiter.take(chat, now).ok) sent.push({ chat, at: now });
    }
  }
  return sent;
}

const maxInWindow = (times: number[], windowMs: number) => {
  let best = 0;
  for (let a = 0, b = 0; b < times.length; b++) {
    while (times[b]! - times[a]! >= windowMs) a++;
    best = Math.max(best, b - a + 1);
  }
  return best;
};

describe("rate limiter", () => {
  it("keeps a group chat to 20 messages a minute and one a second", () => {
    const sent = drive(["-1001"], 60);
    const times = sent.map((s) => s.at);
    expect(maxInWindow(times, 60_000)).toBe(20);
    expect(maxInWindow(times, 1000)).toBe(1);
    // 60 messages need three minutes' worth of windows.
    expect(times.at(-1)!).toBeGreaterThanOrEqual(120_000);
  });

  it("keeps all chats together to 30 messages a second", () => {
    const chats = Array.from({ length: 80 }, (_, i) => String(1000 + i));
    const times = drive(chats, 300).map((s) => s.at);
    expect(maxInWindow(times, 1000)).toBe(30);
  });

  it("lets a private chat have one message a second", () => {
    const times = drive(["42"], 10).map((s) => s.at);
    expect(maxInWindow(times, 1000)).toBe(1);
    expect(times[9]).toBe(9000);
  });

  it("holds a chat until the retry_after of a 429 has passed", () => {
    const limiter = createRateLimiter();
    expect(limiter.take("-5", 0).ok).toBe(true);
    limiter.block("-5", 7000);
    expect(limiter.take("-5", 6999)).toEqual({ ok: false, at: 7000 });
    expect(limiter.take("-5", 7000).ok).toBe(true);
    // Other chats are not held.
    expect(limiter.take("-6", 10).ok).toBe(true);
  });
});
