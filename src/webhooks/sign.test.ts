import { describe, expect, it } from "vitest";
// The reference implementation, used here only, to prove that our signatures interoperate.
import { Webhook } from "standardwebhooks";
import { sign, signatureHeaders, verify } from "./sign.ts";

// The example of the Standard Webhooks reference libraries.
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS = 1614265330;
const BODY = '{"test": 2432232314}';
const KNOWN = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
const at = (seconds: number) => new Date(seconds * 1000);

describe("sign", () => {
  it("produces the known-answer signature of the reference implementation", () => {
    const reference = new Webhook(SECRET).sign(ID, at(TS), BODY);
    expect(reference).toBe(KNOWN);
    expect(sign({ id: ID, timestamp: TS, body: BODY }, SECRET)).toBe(reference);
  });

  it("agrees with the reference on other bodies, including non-ASCII and empty ones", () => {
    const secret = `whsec_${Buffer.from("another key of some length!").toString("base64")}`;
    for (const body of ["", "{}", '{"name":"café ☕","n":[1,2,3]}', "x".repeat(10_000)]) {
      expect(sign({ id: "msg_1", timestamp: 1_700_000_000, body }, secret)).toBe(new Webhook(secret).sign("msg_1", at(1_700_000_000), body));
    }
  });

  it("uses a secret without the whsec_ prefix as raw UTF-8 bytes", () => {
    const raw = "plain-shared-secret";
    expect(sign({ id: ID, timestamp: TS, body: BODY }, raw)).toBe(new Webhook(raw, { format: "raw" }).sign(ID, at(TS), BODY));
    // …which is not the same key as reading it as base64.
    expect(sign({ id: ID, timestamp: TS, body: BODY }, "abcd")).not.toBe(sign({ id: ID, timestamp: TS, body: BODY }, "whsec_abcd"));
  });

  it("rejects a whsec_ secret that is not base64, or empty", () => {
    expect(() => sign({ id: ID, timestamp: TS, body: BODY }, "whsec_not base64!")).toThrow(/base64/);
    expect(() => sign({ id: ID, timestamp: TS, body: BODY }, "whsec_")).toThrow(/empty/);
    expect(() => sign({ id: ID, timestamp: TS, body: BODY }, "")).toThrow(/empty/);
  });
});

describe("verify", () => {
  const headers = signatureHeaders({ id: ID, timestamp: TS, body: BODY }, SECRET);

  it("accepts the reference implementation's signature", () => {
    expect(verify(headers, BODY, SECRET, { now: at(TS) })).toEqual({ ok: true, id: ID, timestamp: TS });
  });

  it("produces headers the reference implementation accepts", () => {
    const now = Math.floor(Date.now() / 1000);
    const h = signatureHeaders({ id: "msg_now", timestamp: now, body: BODY }, SECRET);
    expect(new Webhook(SECRET).verify(BODY, h)).toEqual({ test: 2432232314 });
  });

  it("accepts any matching entry of a space-separated list (key rotation)", () => {
    const other = sign({ id: ID, timestamp: TS, body: BODY }, "whsec_b3RoZXIga2V5");
    const list = { ...headers, "webhook-signature": `v2,abc ${other} ${headers["webhook-signature"]}` };
    expect(verify(list, BODY, SECRET, { now: at(TS) }).ok).toBe(true);
  });

  it("reads headers case-insensitively, from a plain object or a fetch Headers", () => {
    const upper = { "Webhook-Id": ID, "WEBHOOK-TIMESTAMP": String(TS), "Webhook-Signature": KNOWN };
    expect(verify(upper, BODY, SECRET, { now: at(TS) }).ok).toBe(true);
    expect(verify(new Headers(upper), Buffer.from(BODY), SECRET, { now: at(TS) }).ok).toBe(true);
  });

  it("rejects a changed body, id or timestamp, and a signature made with another secret", () => {
    const fail = { ok: false, reason: "no_signature_matched" };
    expect(verify(headers, `${BODY} `, SECRET, { now: at(TS) })).toEqual(fail);
    expect(verify({ ...headers, "webhook-id": "msg_other" }, BODY, SECRET, { now: at(TS) })).toEqual(fail);
    expect(verify({ ...headers, "webhook-timestamp": String(TS + 1) }, BODY, SECRET, { now: at(TS) })).toEqual(fail);
    expect(verify(headers, BODY, "whsec_b3RoZXIga2V5", { now: at(TS) })).toEqual(fail);
  });

  it("ignores entries of another version and malformed entries", () => {
    const sig = headers["webhook-signature"].slice(3);
    for (const s of [`v2,${sig}`, sig, `v1,${sig.slice(0, -1)}`, "v1,", ","]) {
      expect(verify({ ...headers, "webhook-signature": s }, BODY, SECRET, { now: at(TS) })).toEqual({ ok: false, reason: "no_signature_matched" });
    }
  });

  it("enforces the tolerance in both directions, inclusive at the boundary", () => {
    expect(verify(headers, BODY, SECRET, { now: at(TS + 300) }).ok).toBe(true);
    expect(verify(headers, BODY, SECRET, { now: at(TS - 300) }).ok).toBe(true);
    expect(verify(headers, BODY, SECRET, { now: at(TS + 301) })).toEqual({ ok: false, reason: "too_old" });
    expect(verify(headers, BODY, SECRET, { now: at(TS - 301) })).toEqual({ ok: false, reason: "too_new" });
    expect(verify(headers, BODY, SECRET, { now: at(TS + 1000), toleranceSeconds: 1000 }).ok).toBe(true);
  });

  it("reports missing headers and a timestamp that is not whole seconds", () => {
    const { "webhook-signature": _s, ...noSig } = headers;
    expect(verify(noSig, BODY, SECRET, { now: at(TS) })).toEqual({ ok: false, reason: "missing_headers" });
    for (const t of ["1614265330.5", "-1614265330", "soon", "1e9"]) {
      expect(verify({ ...headers, "webhook-timestamp": t }, BODY, SECRET, { now: at(TS) })).toEqual({ ok: false, reason: "bad_timestamp" });
    }
  });
});
