import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { AppError, type ErrorKind } from "../shared/errors.ts";
import { isDbUnavailable } from "../store/errors.ts";

// The one mapping from errors to HTTP answers. Callers get {error:{code,message,requestId}};
// anything unexpected is logged in full and answered as a generic 500, without its message.

export const STATUS: Record<ErrorKind, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  unavailable: 503,
};

// fastify's own errors for bad requests, named in our codes.
const FASTIFY_CODES: Record<string, { kind: ErrorKind; code: string; message?: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: {
    kind: "too_large",
    code: "request.too_large",
    message: "request body is larger than the limit",
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    kind: "invalid",
    code: "request.empty_body",
    message: "body is empty but content-type is application/json",
  },
  FST_ERR_CTP_INVALID_JSON_BODY: { kind: "invalid", code: "request.invalid_json", message: "body is not valid JSON" },
  FST_ERR_CTP_INVALID_JSON_BODY_TOO_DEEP: {
    kind: "invalid",
    code: "request.too_deep",
    message: "JSON nesting is too deep",
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    kind: "invalid",
    code: "request.invalid_content_length",
    message: "content-length does not match the body",
  },
};

export type ErrorBody = { error: { code: string; message: string; requestId: string } };

export function toHttpError(
  err: unknown,
  requestId: string,
): { status: number; body: ErrorBody; log: "none" | "warn" | "error" } {
  if (err instanceof AppError) {
    return {
      status: STATUS[err.kind],
      body: { error: { code: err.code, message: err.message, requestId } },
      log: err.kind === "unavailable" ? "warn" : "none",
    };
  }
  const fe = err as FastifyError;
  const known = fe?.code ? FASTIFY_CODES[fe.code] : undefined;
  if (known)
    return {
      status: STATUS[known.kind],
      body: { error: { code: known.code, message: known.message ?? fe.message, requestId } },
      log: "none",
    };
  if (fe instanceof SyntaxError || fe?.statusCode === 400) {
    return {
      status: 400,
      body: { error: { code: "request.invalid", message: "the request could not be parsed", requestId } },
      log: "none",
    };
  }
  if (isDbUnavailable(err)) {
    return {
      status: 503,
      body: { error: { code: "store.unavailable", message: "the database is unavailable; retry later", requestId } },
      log: "warn",
    };
  }
  if (fe?.statusCode === 415)
    return {
      status: 415,
      body: { error: { code: "request.unsupported_media_type", message: "unsupported content type", requestId } },
      log: "none",
    };
  return { status: 500, body: { error: { code: "internal", message: "internal error", requestId } }, log: "error" };
}

export function errorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply) {
  const { status, body, log } = toHttpError(err, String(req.id));
  if (log === "error") req.log.error({ err }, "unhandled error");
  else if (log === "warn") req.log.warn({ code: body.error.code, message: body.error.message }, "request failed");
  if (status === 503) reply.header("retry-after", "5");
  return reply.status(status).send(body);
}
