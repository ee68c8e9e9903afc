import type { FastifyReply, FastifyRequest } from "fastify";
import { toText, type Html } from "./html.ts";
import { page, type PageArgs } from "./layout.ts";

// Answering with console HTML: a whole page, or a fragment (a live region's new content).

/** A browser navigation or a fragment fetch (they accept text/html); scripts asking for JSON get JSON errors. */
export function wantsHtml(req: FastifyRequest): boolean {
  const accept = String(req.headers.accept ?? "");
  return accept.includes("text/html") || req.headers["x-pitcrew-fragment"] !== undefined;
}

export function sendPage(reply: FastifyReply, args: PageArgs): FastifyReply {
  return reply.header("content-type", "text/html; charset=utf-8").send(toText(page(args)));
}

export function sendFragment(reply: FastifyReply, body: Html): FastifyReply {
  return reply.header("content-type", "text/html; charset=utf-8").send(toText(body));
}
