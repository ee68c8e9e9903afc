import { connect } from "node:net";
import { z } from "zod";
import { parseDuration } from "../../shared/duration.ts";
import { errorMessage, invalid } from "../../shared/errors.ts";
import { readBodyCapped } from "../../shared/read-body.ts";

// `probe`: a read-only HTTP or TCP check that runs inline. A failed check is a result, not an
// error: only parameters that cannot be used throw.

const MAX_BODY_BYTES = 64 * 1024;
const MAX_TIMEOUT_MS = 60_000;

const timeout = z
  .string()
  .default("5s")
  .transform((s, ctx) => {
    const ms = parseDuration(s);
    if (ms === undefined || ms <= 0 || ms > MAX_TIMEOUT_MS) {
      ctx.addIssue({ code: "custom", message: "expected a duration like 5s, at most 60s" });
      return z.NEVER;
    }
    return ms;
  });

const status = z.number().int().min(100).max(599);

const HttpProbe = z
  .object({
    url: z.string().refine((s) => {
      try {
        const u = new URL(s);
        return (u.protocol === "http:" || u.protocol === "https:") && !u.username && !u.password;
      } catch {
        return false;
      }
    }, "expected an http:// or https:// URL without credentials"),
    method: z.enum(["GET", "HEAD"]).default("GET"),
    expect_status: z.union([status, z.array(status).min(1)]).optional(),
    body_regex: z
      .string()
      .refine((s) => {
        try {
          new RegExp(s);
          return true;
        } catch {
          return false;
        }
      }, "not a valid regular expression")
      .optional(),
    timeout,
  })
  .strict()
  .refine((p) => !(p.method === "HEAD" && p.body_regex !== undefined), "body_regex needs method GET");

const TcpProbe = z
  .object({
    tcp: z.string().transform((s, ctx) => {
      const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(s);
      const port = m ? Number(m[3]) : 0;
      if (!m || port < 1 || port > 65535) {
        ctx.addIssue({ code: "custom", message: "expected host:port" });
        return z.NEVER;
      }
      return { host: (m[1] ?? m[2])!, port };
    }),
    timeout,
  })
  .strict();

export type ProbeParams = z.input<typeof HttpProbe> | z.input<typeof TcpProbe>;
type Parsed = { kind: "http"; p: z.output<typeof HttpProbe> } | { kind: "tcp"; p: z.output<typeof TcpProbe> };

export type ProbeResult = {
  ok: boolean;
  summary: string;
  details: { status?: number; latencyMs: number; matched?: boolean; error?: string };
};

export function parseProbeParams(input: unknown): Parsed {
  const o = input && typeof input === "object" ? (input as Record<string, unknown>) : {};
  const isTcp = "tcp" in o;
  if (isTcp === "url" in o) throw invalid("probe.invalid_params", "probe needs exactly one of url or tcp");
  const parsed = isTcp ? TcpProbe.safeParse(input) : HttpProbe.safeParse(input);
  if (!parsed.success) {
    const message = parsed.error.issues
      .map((i) => `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`)
      .join("; ");
    throw invalid("probe.invalid_params", `probe: ${message}`);
  }
  return isTcp
    ? { kind: "tcp", p: parsed.data as z.output<typeof TcpProbe> }
    : { kind: "http", p: parsed.data as z.output<typeof HttpProbe> };
}

export async function runProbe(params: unknown): Promise<ProbeResult> {
  const parsed = parseProbeParams(params);
  return parsed.kind === "http" ? probeHttp(parsed.p) : probeTcp(parsed.p);
}

function statusOk(code: number, expect: number | number[] | undefined): boolean {
  if (expect === undefined) return code >= 200 && code <= 399;
  return Array.isArray(expect) ? expect.includes(code) : code === expect;
}

const expected = (e: number | number[] | undefined) =>
  e === undefined ? "200-399" : Array.isArray(e) ? e.join(", ") : String(e);

async function probeHttp(p: z.output<typeof HttpProbe>): Promise<ProbeResult> {
  const target = `${p.method} ${p.url}`;
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    // The signal also bounds reading the body. Redirects are not followed: a 3xx is the answer.
    const res = await fetch(p.url, { method: p.method, redirect: "manual", signal: AbortSignal.timeout(p.timeout) });
    let matched: boolean | undefined;
    if (p.body_regex !== undefined) {
      const body = await readBodyCapped(res, MAX_BODY_BYTES);
      matched = new RegExp(p.body_regex).test(body.text);
    } else {
      await res.body?.cancel();
    }
    const latencyMs = elapsed();
    const statusPassed = statusOk(res.status, p.expect_status);
    const ok = statusPassed && matched !== false;
    const why = !statusPassed
      ? ` (expected ${expected(p.expect_status)})`
      : matched === false
        ? `, body does not match /${p.body_regex}/`
        : "";
    return {
      ok,
      summary: `${target} → ${res.status} in ${latencyMs} ms${why}`,
      details: { status: res.status, latencyMs, ...(matched !== undefined && { matched }) },
    };
  } catch (err) {
    const latencyMs = elapsed();
    const error = describeFetchError(err, p.timeout);
    return { ok: false, summary: `${target} failed: ${error}`, details: { latencyMs, error } };
  }
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError"))
    return `no answer within ${timeoutMs} ms`;
  // undici puts the system error (ECONNREFUSED, ENOTFOUND…) in `cause`.
  const cause = err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined;
  return cause?.code ?? cause?.message ?? errorMessage(err);
}

function probeTcp(p: z.output<typeof TcpProbe>): Promise<ProbeResult> {
  const target = `tcp ${p.tcp.host}:${p.tcp.port}`;
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: p.tcp.host, port: p.tcp.port });
    const done = (error?: string) => {
      clearTimeout(timer);
      socket.destroy();
      const latencyMs = Math.round(performance.now() - started);
      resolve(
        error === undefined
          ? { ok: true, summary: `${target} accepted a connection in ${latencyMs} ms`, details: { latencyMs } }
          : { ok: false, summary: `${target} failed: ${error}`, details: { latencyMs, error } },
      );
    };
    const timer = setTimeout(() => done(`no connection within ${p.timeout} ms`), p.timeout);
    socket.once("connect", () => done());
    socket.once("error", (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}
