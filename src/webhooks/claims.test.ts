import { describe, expect, it } from "vitest";
import { leaseState, openKeyOf, resultHash } from "./claims.ts";

describe("leaseState", () => {
  it("is active only before lease_until, expired from then on even before the sweep records it", () => {
    expect(leaseState({ state: "active", lease_until: 1000 }, 999)).toBe("active");
    expect(leaseState({ state: "active", lease_until: 1000 }, 1000)).toBe("expired");
    expect(leaseState({ state: "expired", lease_until: 5000 }, 1000)).toBe("expired");
    expect(leaseState({ state: "done", lease_until: 5000 }, 1000)).toBe("done");
  });
});

describe("resultHash", () => {
  const pr = { number: 7, url: "https://github.com/acme/gitops/pull/7", branch: "agent/fix", headSha: "a".repeat(40) };

  it("is the same for the same result, whatever the order of its fields", () => {
    expect(resultHash({ status: "pr_created", summary: "s", pr })).toBe(
      resultHash({
        pr: { headSha: pr.headSha, branch: pr.branch, url: pr.url, number: 7 },
        summary: "s",
        status: "pr_created",
      }),
    );
  });

  it("differs when the status, summary, pull request or details differ", () => {
    const base = resultHash({ status: "pr_created", summary: "s", pr });
    expect(resultHash({ status: "failed", summary: "s", pr })).not.toBe(base);
    expect(resultHash({ status: "pr_created", summary: "t", pr })).not.toBe(base);
    expect(resultHash({ status: "pr_created", summary: "s", pr: { ...pr, number: 8 } })).not.toBe(base);
    expect(resultHash({ status: "pr_created", summary: "s", pr, details: { a: 1 } })).not.toBe(base);
    expect(resultHash({ status: "pr_created", summary: undefined, pr })).not.toBe(
      resultHash({ status: "pr_created", summary: "", pr }),
    );
  });
});

describe("openKeyOf", () => {
  it("is the skill's dedupe key, else the alert fingerprint's, else a manual incident's own key", () => {
    expect(openKeyOf({ dedupe_key: "d:rollback:shop/api", fingerprint: "abc", source: "alertmanager" })).toBe(
      "d:rollback:shop/api",
    );
    expect(openKeyOf({ dedupe_key: null, fingerprint: "abc", source: "alertmanager" })).toBe("f:abc");
    expect(openKeyOf({ dedupe_key: null, fingerprint: "m:inc_01", source: "mcp" })).toBe("m:inc_01");
  });
});
