import { describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { parseSecrets, signHeaders, signOne, verifyHeaders } from "./sign.ts";

// The example of the Standard Webhooks reference libraries.
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER = "whsec_b3RoZXIga2V5";
const ID = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS = 1614265330;
const BODY = '{"test": 2432232314}';
const KNOWN = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
const at = (seconds: number) => new Date(seconds * 1000);

describe("signHeaders", () => {
  it("produces the known-answer signature of the specification's example", () => {
    expect(signHeaders(ID, TS, BODY, [SECRET])).toEqual({
      "webhook-id": ID,
      "webhook-timestamp": String(TS),
      "webhook-signature": KNOWN,
    });
  });

  it("signs once per active secret, newest first, so a receiver holding either one accepts it", () => {
    const h = signHeaders(ID, TS, BODY, [OTHER, SECRET]);
    expect(h["webhook-signature"]).toBe(`${signOne(ID, TS, BODY, OTHER)} ${KNOWN}`);
    for (const secret of [SECRET, OTHER]) {
      expect(verifyHeaders(h, BODY, [secret], { now: at(TS) })).toEqual({ ok: true, id: ID, timestamp: TS });
    }
  });

  it("is accepted by the reference verifier, for bodies with non-ASCII text and of any size", () => {
    const now = Math.floor(Date.now() / 1000);
    for (const body of ["{}", '{"name":"café ☕","n":[1,2,3]}', JSON.stringify({ x: "x".repeat(50_000) })]) {
      const h = signHeaders("msg_now", now, body, [SECRET]);
      expect(new Webhook(SECRET).verify(body, h)).toEqual(JSON.parse(body));
    }
  });

  it("refuses to sign without a secret, or with a timestamp that is not whole seconds", () => {
    expect(() => signHeaders(ID, TS, BODY, [])).toThrow(/no secret/);
    expect(() => signHeaders(ID, 1.5, BODY, [SECRET])).toThrow(/whole seconds/);
  });
});

describe("parseSecrets", () => {
  it("reads one secret or two separated by spaces, and nothing from an unset variable", () => {
    expect(parseSecrets(SECRET)).toEqual([SECRET]);
    expect(parseSecrets(` ${OTHER}  ${SECRET}\n`)).toEqual([OTHER, SECRET]);
    expect(parseSecrets(undefined)).toEqual([]);
    expect(parseSecrets("")).toEqual([]);
  });

  it("rejects a whsec_ secret that is not base64, or empty", () => {
    expect(() => parseSecrets("whsec_not-base64!")).toThrow(/base64/);
    expect(() => parseSecrets(`${SECRET} whsec_`)).toThrow(/empty/);
  });

  it("uses a secret without the whsec_ prefix as raw UTF-8 bytes", () => {
    const raw = "plain-shared-secret";
    expect(signOne(ID, TS, BODY, raw)).toBe(new Webhook(raw, { format: "raw" }).sign(ID, at(TS), BODY));
  });
});

describe("verifyHeaders", () => {
  const headers = signHeaders(ID, TS, BODY, [SECRET]);

  it("accepts a signature made by the reference signer with any of the active secrets", () => {
    const reference = { ...headers, "webhook-signature": new Webhook(SECRET).sign(ID, at(TS), BODY) };
    expect(verifyHeaders(reference, BODY, [OTHER, SECRET], { now: at(TS) })).toEqual({
      ok: true,
      id: ID,
      timestamp: TS,
    });
    expect(verifyHeaders(reference, Buffer.from(BODY), [SECRET], { now: at(TS) }).ok).toBe(true);
  });

  it("reads headers case-insensitively, from a plain object or a fetch Headers", () => {
    const upper = { "Webhook-Id": ID, "WEBHOOK-TIMESTAMP": String(TS), "Webhook-Signature": KNOWN };
    expect(verifyHeaders(upper, BODY, [SECRET], { now: at(TS) }).ok).toBe(true);
    expect(verifyHeaders(new Headers(upper), BODY, [SECRET], { now: at(TS) }).ok).toBe(true);
  });

  it("rejects a changed body, id or timestamp, and a signature made with a secret it does not hold", () => {
    const fail = { ok: false, reason: "no_signature_matched" };
    expect(verifyHeaders(headers, `${BODY} `, [SECRET], { now: at(TS) })).toEqual(fail);
    expect(verifyHeaders({ ...headers, "webhook-id": "msg_other" }, BODY, [SECRET], { now: at(TS) })).toEqual(fail);
    expect(verifyHeaders({ ...headers, "webhook-timestamp": String(TS + 1) }, BODY, [SECRET], { now: at(TS) })).toEqual(
      fail,
    );
    expect(verifyHeaders(headers, BODY, [OTHER], { now: at(TS) })).toEqual(fail);
    expect(verifyHeaders(headers, BODY, [], { now: at(TS) })).toEqual({ ok: false, reason: "no_secret" });
  });

  it("ignores entries of another version and malformed entries", () => {
    const sig = KNOWN.slice(3);
    for (const s of [`v2,${sig}`, sig, `v1,${sig.slice(0, -1)}`, "v1,", ","]) {
      expect(verifyHeaders({ ...headers, "webhook-signature": s }, BODY, [SECRET], { now: at(TS) })).toEqual({
        ok: false,
        reason: "no_signature_matched",
      });
    }
    expect(
      verifyHeaders({ ...headers, "webhook-signature": `v1a,xyz ${KNOWN}` }, BODY, [SECRET], { now: at(TS) }).ok,
    ).toBe(true);
  });

  it("enforces the tolerance in both directions, inclusive at the boundary", () => {
    expect(verifyHeaders(headers, BODY, [SECRET], { now: at(TS + 300) }).ok).toBe(true);
    expect(verifyHeaders(headers, BODY, [SECRET], { now: at(TS - 300) }).ok).toBe(true);
    expect(verifyHeaders(headers, BODY, [SECRET], { now: at(TS + 301) })).toEqual({ ok: false, reason: "too_old" });
    expect(verifyHeaders(headers, BODY, [SECRET], { now: at(TS - 301) })).toEqual({ ok: false, reason: "too_new" });
    expect(verifyHeaders(headers, BODY, [SECRET], { now: at(TS + 1000), toleranceSeconds: 1000 }).ok).toBe(true);
  });

  it("reports missing headers and a timestamp that is not whole seconds", () => {
    const { "webhook-signature": _s, ...noSig } = headers;
    expect(verifyHeaders(noSig, BODY, [SECRET], { now: at(TS) })).toEqual({ ok: false, reason: "missing_headers" });
    for (const t of ["1614265330.5", "-1614265330", "soon", "1e9"]) {
      expect(verifyHeaders({ ...headers, "webhook-timestamp": t }, BODY, [SECRET], { now: at(TS) })).toEqual({
        ok: false,
        reason: "bad_timestamp",
      });
    }
  });
});
