import { randomUUID } from "node:crypto";
import { z } from "zod";
import { parseDuration } from "../shared/duration.ts";
import { AppError, errorMessage, invalid, unavailable } from "../shared/errors.ts";
import { readBodyCapped } from "../shared/read-body.ts";
import { parseSecrets, signHeaders } from "../webhooks/sign.ts";
import type { Action } from "./schema.ts";

// The `http` remote skill: POST `{incident, skill, params}` to the skill's URL, signed with the
// Standard Webhooks scheme when the skill names a secret, and read back either a plan (run this
// skill with these params) or a result (done, here is what happened).

const MAX_ANSWER_BYTES = 1024 * 1024;

export type HttpAction = Extract<Action, { http: unknown }>["http"];

export const RemoteAnswer = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("plan"),
    skill: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
    params: z.record(z.string(), z.unknown()),
    rationale: z.string().max(4000).optional(),
  }),
  z.object({
    type: z.literal("result"),
    ok: z.boolean(),
    summary: z.string().max(4000),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
]);
export type RemoteAnswer = z.infer<typeof RemoteAnswer>;

export type RemoteRequest = { incident: Record<string, unknown>; skill: string; params: Record<string, unknown> };

export type RemoteOptions = {
  /** Looks a secret up by env var name; the caller decides where secrets come from. */
  secrets: (name: string) => string | undefined;
  fetch?: typeof fetch;
  now?: () => Date;
  newId?: () => string;
};

/** Scheme, host and path only: a query string or userinfo may carry a credential. */
function shown(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

export async function callRemoteSkill(
  action: HttpAction,
  request: RemoteRequest,
  opts: RemoteOptions,
): Promise<RemoteAnswer> {
  if (!/^https?:$/.test(new URL(action.url).protocol))
    throw invalid("remote.bad_url", "a remote skill URL must be http:// or https://");
  const target = shown(action.url);
  const timeoutMs = parseDuration(action.timeout);
  if (timeoutMs === undefined)
    throw invalid("remote.bad_timeout", `remote skill timeout ${action.timeout} is not a duration`);

  const body = JSON.stringify(request);
  const id = opts.newId?.() ?? `msg_${randomUUID().replace(/-/g, "")}`;
  const timestamp = Math.floor((opts.now?.() ?? new Date()).getTime() / 1000);
  let signed: Record<string, string> = { "webhook-id": id, "webhook-timestamp": String(timestamp) };
  if (action.secret_env) {
    // One secret, or two separated by a space while it is rotated: one signature per secret.
    const secrets = parseSecrets(opts.secrets(action.secret_env));
    if (secrets.length === 0)
      throw invalid("remote.secret_missing", `the secret ${action.secret_env} for ${target} is not set`);
    signed = signHeaders(id, timestamp, body, secrets);
  }

  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(action.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", ...signed },
      body,
      // A redirect would re-send the signed body somewhere else: treat it as an answer instead.
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
      throw unavailable("remote.timeout", `remote skill ${target} did not answer within ${timeoutMs} ms`);
    }
    const cause = err instanceof Error ? (err.cause as { code?: string } | undefined) : undefined;
    throw unavailable("remote.unreachable", `remote skill ${target} failed: ${cause?.code ?? errorMessage(err)}`);
  }

  if (!res.ok) {
    await res.body?.cancel();
    if (res.status >= 500 || res.status === 429)
      throw unavailable("remote.unavailable", `remote skill ${target} answered ${res.status}`);
    throw new AppError("invalid", "remote.rejected", `remote skill ${target} answered ${res.status}`, {
      details: { status: res.status },
    });
  }

  let text: string;
  try {
    const read = await readBodyCapped(res, MAX_ANSWER_BYTES);
    if (read.truncated)
      throw invalid("remote.bad_answer", `remote skill ${target} answered more than ${MAX_ANSWER_BYTES} bytes`);
    text = read.text;
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
      throw unavailable("remote.timeout", `remote skill ${target} did not finish its answer within ${timeoutMs} ms`);
    }
    throw unavailable("remote.unreachable", `remote skill ${target}: reading the answer failed: ${errorMessage(err)}`);
  }

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid("remote.bad_answer", `remote skill ${target} did not answer JSON`);
  }
  const parsed = RemoteAnswer.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(
      "remote.bad_answer",
      `remote skill ${target} answered neither a plan nor a result (${issue?.path.join(".") || "answer"}: ${issue?.message})`,
    );
  }
  return parsed.data;
}
