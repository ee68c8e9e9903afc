import { randomBytes } from "node:crypto";
import { delay, http, HttpResponse, type HttpHandler } from "msw";

// Handler factories for the Anthropic Messages API (POST /v1/messages), answering with the
// bodies and error shapes the API documents. Every handler records what it received, so a test
// can assert the tools offered, the tool_choice and the prompt.

export const ANTHROPIC_MESSAGES_URL = "https://api.anthropic.com/v1/messages";

export type CapturedRequest = {
  headers: Record<string, string>;
  body: {
    model: string;
    max_tokens: number;
    system?: string;
    messages: Array<{ role: string; content: string | Array<{ type: string; text?: string }> }>;
    tools?: Array<{
      name: string;
      description?: string;
      input_schema: { type: "object"; properties?: Record<string, Record<string, unknown>>; required?: string[] };
    }>;
    tool_choice?: { type: string; disable_parallel_tool_use?: boolean };
    [k: string]: unknown;
  };
};

type Block = Record<string, unknown>;
type Usage = { input_tokens: number; output_tokens: number };

const base62 = (n: number) => {
  const chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  return Array.from(randomBytes(n), (b) => chars[b % 62]).join("");
};
const requestId = () => `req_011C${base62(20)}`;

/** A complete Messages API response body. */
export function messageBody(opts: {
  model: string;
  content: Block[];
  stop_reason: string;
  usage?: Usage;
  stop_details?: Block | null;
}): Record<string, unknown> {
  const usage = opts.usage ?? { input_tokens: 1187, output_tokens: 96 };
  return {
    id: `msg_01${base62(22)}`,
    type: "message",
    role: "assistant",
    model: opts.model,
    content: opts.content,
    stop_reason: opts.stop_reason,
    stop_sequence: null,
    stop_details: opts.stop_details ?? null,
    container: null,
    diagnostics: null,
    usage: {
      input_tokens: usage.input_tokens,
      output_tokens: usage.output_tokens,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
      server_tool_use: null,
      service_tier: "standard",
      inference_geo: null,
      output_tokens_details: null,
      speed: null,
    },
  };
}

export const toolUseBlock = (name: string, input: unknown): Block => ({
  type: "tool_use",
  id: `toolu_01${base62(22)}`,
  name,
  input,
  caller: { type: "direct" },
});
export const textBlock = (text: string): Block => ({ type: "text", text, citations: null });

/** An error body as the API documents it: `{type: "error", error: {type, message}, request_id}`. */
export const errorBody = (type: string, message: string) => ({
  type: "error",
  error: { type, message },
  request_id: requestId(),
});

/**
 * One mock of the Messages endpoint. `requests` fills as handlers answer. A request without the
 * expected key gets the API's 401, as the real one would.
 */
export function createAnthropicMock(opts: { apiKey: string; model?: string }) {
  const requests: CapturedRequest[] = [];

  function authorized(request: Request): boolean {
    return (
      request.headers.get("x-api-key") === opts.apiKey ||
      request.headers.get("authorization") === `Bearer ${opts.apiKey}`
    );
  }

  function respond(answer: (body: CapturedRequest["body"]) => Promise<Response> | Response): HttpHandler {
    return http.post(ANTHROPIC_MESSAGES_URL, async ({ request }) => {
      const body = (await request.json()) as CapturedRequest["body"];
      requests.push({ headers: Object.fromEntries(request.headers.entries()), body });
      if (!authorized(request))
        return HttpResponse.json(errorBody("authentication_error", "invalid x-api-key"), {
          status: 401,
          headers: { "request-id": requestId() },
        });
      return answer(body);
    });
  }

  const message = (
    body: CapturedRequest["body"],
    content: Block[],
    stop_reason: string,
    extra: { usage?: Usage; stop_details?: Block } = {},
  ) =>
    HttpResponse.json(messageBody({ model: opts.model ?? body.model, content, stop_reason, ...extra }), {
      headers: { "request-id": requestId() },
    });

  function error(status: number, type: string, text: string, headers: Record<string, string> = {}): HttpHandler {
    return respond(() =>
      HttpResponse.json(errorBody(type, text), { status, headers: { "request-id": requestId(), ...headers } }),
    );
  }

  return {
    requests,
    /** The model calls one tool (optionally after a short text, as models often do). */
    toolUse: (name: string, input: unknown, o: { usage?: Usage; preamble?: string } = {}) =>
      respond((body) =>
        message(body, [...(o.preamble ? [textBlock(o.preamble)] : []), toolUseBlock(name, input)], "tool_use", o),
      ),
    /** Several tool calls in one answer. */
    toolUses: (calls: Array<{ name: string; input: unknown }>, o: { usage?: Usage } = {}) =>
      respond((body) =>
        message(
          body,
          calls.map((c) => toolUseBlock(c.name, c.input)),
          "tool_use",
          o,
        ),
      ),
    /** Plain text and no tool call. */
    text: (text: string, o: { usage?: Usage } = {}) =>
      respond((body) => message(body, [textBlock(text)], "end_turn", o)),
    /** The safety classifiers stopped the answer. */
    refusal: (o: { usage?: Usage } = {}) =>
      respond((body) =>
        message(body, [], "refusal", {
          ...o,
          stop_details: { type: "refusal", category: "cyber", explanation: "This request could enable cyber harm." },
        }),
      ),
    error,
    overloaded: () => error(529, "overloaded_error", "Overloaded"),
    rateLimited: (retryAfterSeconds = 30) =>
      error(
        429,
        "rate_limit_error",
        "This request would exceed your organization's rate limit of 50,000 input tokens per minute.",
        {
          "retry-after": String(retryAfterSeconds),
          "anthropic-ratelimit-input-tokens-remaining": "0",
        },
      ),
    serverError: () => error(500, "api_error", "Internal server error"),
    /** Answers a good tool call, but only after `ms`: longer than the client's timeout. */
    delayed: (ms: number, name = "never", input: unknown = {}) =>
      respond(async (body) => {
        await delay(ms);
        return message(body, [toolUseBlock(name, input)], "tool_use");
      }),
    /** Sends the headers at once, then stalls the body for `ms`. */
    stalledBody: (ms: number) =>
      respond((body) => {
        const json = JSON.stringify(
          messageBody({ model: body.model, content: [toolUseBlock("never", {})], stop_reason: "tool_use" }),
        );
        const stream = new ReadableStream<Uint8Array>({
          async start(c) {
            c.enqueue(new TextEncoder().encode(json.slice(0, 20)));
            await delay(ms);
            try {
              c.enqueue(new TextEncoder().encode(json.slice(20)));
              c.close();
            } catch {
              // The client gave up and cancelled the stream.
            }
          },
        });
        return new HttpResponse(stream, { headers: { "content-type": "application/json", "request-id": requestId() } });
      }),
  };
}

export type AnthropicMock = ReturnType<typeof createAnthropicMock>;

/** The text of the user turn(s) of a captured request, for asserting what the model was told. */
export function promptText(req: CapturedRequest): string {
  const parts = req.body.messages.flatMap((m) =>
    typeof m.content === "string" ? [m.content] : m.content.map((b) => b.text ?? ""),
  );
  return [req.body.system ?? "", ...parts].join("\n");
}
