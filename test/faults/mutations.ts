import { fixtureBody, fixtureText, manifest } from "../helpers/alerts.ts";
import type { prng } from "./helpers.ts";

// Seeded mutations of the AlertManager fixtures (test/fixtures/alertmanager). Each says what the
// webhook must make of it: "valid" (stored whole, 2xx), "invalid" (4xx, nothing stored) or "any"
// (a byte flip may or may not break it: either answer, but 2xx stores it and 4xx stores nothing).

type Rnd = ReturnType<typeof prng>;
type Json = Record<string, any>;
export type Fuzzed = {
  name: string;
  expect: "valid" | "invalid" | "any";
  body: string | Buffer;
  contentType: string;
  /** Alerts in the payload when it is valid JSON with an alerts array. */
  alerts?: number;
};

const GOOD = Object.keys(manifest.good);
const BAD = Object.keys(manifest.bad);
const JSON_TYPE = "application/json";

const STRINGS = [
  "",
  " ",
  "ünïcödé ✓",
  "日本語のラベル",
  "emoji 🚒🔥👩‍🚒",
  "RTL עברית العربية",
  "combining e\u0301\u0301\u0301",
  "zero\u200bwidth",
  "tab\tnew\nline\r",
  "nul\u0000byte",
  'quote " backslash \\ slash /',
  "<script>alert(1)</script>",
  "'; DROP TABLE alerts; --",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal placeholder is the point
  "%s%n{{labels.x}}${x}",
  "__proto__",
  "\u007f\u0080\u00ff",
  "astral 𝕏𝔸𝕄",
];

function randomString(rnd: Rnd): string {
  if (rnd.int(10) === 0) return rnd.pick(STRINGS).repeat(1 + rnd.int(4000));
  return rnd.pick(STRINGS) + (rnd.int(2) ? String(rnd.int(1e6)) : "");
}

function labelName(rnd: Rnd): string {
  const first = "abcdefghijklmnopqrstuvwxyz_ABCXYZ";
  const rest = `${first}0123456789`;
  let s = first[rnd.int(first.length)]!;
  for (let i = rnd.int(40); i > 0; i--) s += rest[rnd.int(rest.length)];
  return s;
}

function validTimestamp(rnd: Rnd): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const frac = rnd.int(3) === 0 ? "" : `.${String(rnd.int(1e9)).slice(0, 1 + rnd.int(9))}`;
  const zone = rnd.int(2) ? "Z" : `${rnd.int(2) ? "+" : "-"}${pad(rnd.int(14))}:${pad(rnd.pick([0, 30, 45]))}`;
  return `2026-${pad(1 + rnd.int(12))}-${pad(1 + rnd.int(28))}T${pad(rnd.int(24))}:${pad(rnd.int(60))}:${pad(rnd.int(60))}${frac}${zone}`;
}

const anyAlert = (p: Json, rnd: Rnd): Json => rnd.pick(p.alerts as Json[]);

const VALID: Record<string, (p: Json, rnd: Rnd) => void> = {
  labelValue: (p, rnd) => {
    const a = anyAlert(p, rnd);
    const names = Object.keys(a.labels).filter((n) => n !== "alertname");
    if (names.length) a.labels[rnd.pick(names)] = randomString(rnd);
  },
  alertname: (p, rnd) => {
    anyAlert(p, rnd).labels.alertname = randomString(rnd) || "x";
  },
  addLabels: (p, rnd) => {
    const a = anyAlert(p, rnd);
    for (let i = 1 + rnd.int(50); i > 0; i--) a.labels[labelName(rnd)] = randomString(rnd);
  },
  longAnnotation: (p, rnd) => {
    const a = anyAlert(p, rnd);
    a.annotations = { ...a.annotations, description: "x".repeat(1000 + rnd.int(200_000)) };
  },
  repeatedAlerts: (p) => {
    p.alerts = [...p.alerts, ...structuredClone(p.alerts)];
  },
  unknownFields: (p, rnd) => {
    p[`future_${labelName(rnd)}`] = { nested: [1, "two", null, { three: true }] };
    anyAlert(p, rnd).silencedBy = ["abc"];
  },
  timestamps: (p, rnd) => {
    const a = anyAlert(p, rnd);
    a.startsAt = validTimestamp(rnd);
    if (a.status === "firing") a.endsAt = rnd.int(2) ? "0001-01-01T00:00:00Z" : validTimestamp(rnd);
  },
  truncatedAlerts: (p, rnd) => {
    p.truncatedAlerts = rnd.int(100_000);
  },
  withoutOptionals: (p, rnd) => {
    const a = anyAlert(p, rnd);
    delete a.annotations;
    delete a.generatorURL;
    delete a.endsAt;
    if (a.status === "firing" && rnd.int(2)) delete a.fingerprint;
    delete p.groupLabels;
    delete p.commonAnnotations;
    delete p.externalURL;
  },
  emptyLabelSets: (p) => {
    p.groupLabels = {};
    p.commonLabels = {};
    p.commonAnnotations = {};
  },
};

const INVALID: Record<string, (p: Json, rnd: Rnd) => void> = {
  missingTopField: (p, rnd) => {
    delete p[rnd.pick(["version", "status", "alerts", "groupKey", "receiver"])];
  },
  missingAlertField: (p, rnd) => {
    const a = anyAlert(p, rnd);
    const field = rnd.pick(["labels", "startsAt", "status", "alertname"]);
    if (field === "alertname") delete a.labels.alertname;
    else delete a[field];
  },
  wrongType: (p, rnd) => {
    const a = anyAlert(p, rnd);
    const cases: (() => void)[] = [
      () => (p.alerts = { 0: a }),
      () => (p.version = 4),
      () => (p.truncatedAlerts = "3"),
      () => (p.groupLabels = ["a"]),
      () => (a.labels[labelName(rnd)] = rnd.pick([5, null, true, ["x"], { y: "z" }])),
      () => (a.annotations = { summary: rnd.pick([1, null, false]) }),
      () => (a.startsAt = 1_764_000_000),
      () => (a.labels = "alertname=x"),
      () => (p.alerts = [a, "not an alert"]),
    ];
    rnd.pick(cases)();
  },
  badTimestamp: (p, rnd) => {
    anyAlert(p, rnd).startsAt = rnd.pick([
      "2026-02-30T08:00:00Z",
      "2026-11-20 08:00:00",
      "2026-11-20T24:00:00Z",
      "2026-13-01T00:00:00Z",
      "2026-11-20T08:00:00",
      "yesterday",
      "2026-11-20T08:00:00+25:00",
      "",
    ]);
  },
  badEnum: (p, rnd) => {
    if (rnd.int(2)) anyAlert(p, rnd).status = rnd.pick(["pending", "FIRING", "", "inactive"]);
    else p.status = rnd.pick(["pending", "Resolved"]);
  },
  noAlerts: (p) => {
    p.alerts = [];
  },
  badVersion: (p, rnd) => {
    p.version = rnd.pick(["3", "5", "", "4.0", " 4"]);
  },
  negativeTruncated: (p) => {
    p.truncatedAlerts = -1;
  },
};

/** Text-level breakage: returns the broken body. */
const BROKEN: Record<string, (text: string, rnd: Rnd) => string | Buffer> = {
  truncatedJson: (text, rnd) => text.trimEnd().slice(0, 1 + rnd.int(text.trimEnd().length - 2)),
  trailingGarbage: (text, rnd) => `${text}${rnd.pick(["}", ",", "x", "{}", "\u0000"])}`,
  invalidUtf8: (text, rnd) => {
    const b = Buffer.from(text, "utf8");
    const at = text.indexOf('"alertname"');
    const pos = at > 0 ? Buffer.byteLength(text.slice(0, at + 1)) : rnd.int(b.length);
    return Buffer.concat([b.subarray(0, pos), Buffer.from([rnd.pick([0xff, 0xc3, 0xe2, 0x80])]), b.subarray(pos)]);
  },
  loneSurrogate: (text) => text.replace(/"alertname":\s*"/, '"alertname": "\\ud83d'),
  tooDeep: (text) => {
    const deep = `"x": ${"[".repeat(40)}${"]".repeat(40)}, `;
    const out = text.replace(/"annotations":\s*\{/, `"annotations": {${deep}`);
    return out !== text ? out : text.replace(/"labels":\s*\{/, `"labels": {${deep}`);
  },
};

/** The i-th payload of a fuzz run with this generator; `tag` makes its fingerprints its own. */
export function fuzzed(rnd: Rnd, tag: string): Fuzzed {
  const roll = rnd.int(100);
  if (roll < 8) {
    // A bad fixture as it is: invalid, with its own content type.
    const file = rnd.pick(BAD);
    const ct = manifest.bad[file]!.contentType ?? JSON_TYPE;
    return { name: `bad:${file}`, expect: "invalid", body: fixtureBody("bad", file, tag), contentType: ct };
  }
  const file = rnd.pick(GOOD);
  const text = fixtureText("good", file, tag);
  if (roll < 23) {
    const [name, breakIt] = rnd.pick(Object.entries(BROKEN));
    return { name: `${name}:${file}`, expect: "invalid", body: breakIt(text, rnd), contentType: JSON_TYPE };
  }
  if (roll < 33) {
    // One to three random bytes replaced: may break the JSON, a type, a date, or nothing at all.
    const b = Buffer.from(text, "utf8");
    for (let i = 1 + rnd.int(3); i > 0; i--) b[rnd.int(b.length)] = rnd.int(256);
    let alerts: number | undefined;
    try {
      alerts = JSON.parse(b.toString("utf8")).alerts?.length;
    } catch {}
    return { name: `byteFlip:${file}`, expect: "any", body: b, contentType: JSON_TYPE, alerts };
  }
  const p = JSON.parse(text) as Json;
  if (roll < 55) {
    const [name, mutate] = rnd.pick(Object.entries(INVALID));
    mutate(p, rnd);
    return { name: `${name}:${file}`, expect: "invalid", body: JSON.stringify(p), contentType: JSON_TYPE };
  }
  // Valid: one to three mutations that keep the payload valid, sometimes pretty-printed.
  const names: string[] = [];
  for (let i = 1 + rnd.int(3); i > 0; i--) {
    const [name, mutate] = rnd.pick(Object.entries(VALID));
    mutate(p, rnd);
    names.push(name);
  }
  const body = rnd.int(4) === 0 ? JSON.stringify(p, null, 2) : JSON.stringify(p);
  return { name: `${names.join("+")}:${file}`, expect: "valid", body, contentType: JSON_TYPE, alerts: p.alerts.length };
}
