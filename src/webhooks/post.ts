import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { Readable } from "node:stream";
import { errorMessage } from "../shared/errors.ts";
import { readBodyCapped } from "../shared/read-body.ts";
import { isPrivateAddress } from "./address.ts";

// One webhook POST, with SSRF care: the host is resolved here, every address it resolves to is
// checked (loopback, link-local and private ranges are refused unless allowPrivate), and the
// connection goes to the address that was checked — never to a second lookup an attacker's DNS
// could answer differently. Redirects are not followed (node's http client never does); the
// answer's body is read up to a limit; the whole exchange has one deadline.

export type PostOutcome =
  | { kind: "answered"; status: number; location?: string; body: string }
  /** Refused before connecting (SSRF rules, a bad URL): sending again will not help. */
  | { kind: "refused"; error: string }
  /** No answer (DNS, connection, timeout): may pass. */
  | { kind: "failed"; error: string };

export type PostOptions = {
  allowPrivate: boolean;
  timeoutMs: number;
  /** The most of the answer's body that is read (default 64 KiB). */
  maxBodyBytes?: number;
  /** For tests: how names resolve (default: the system resolver). */
  resolve?: (host: string) => Promise<LookupAddress[]>;
};

const defaultResolve = (host: string) =>
  new Promise<LookupAddress[]>((resolve, reject) =>
    dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
  );

export async function postWebhook(
  url: string,
  headers: Record<string, string>,
  body: string,
  opts: PostOptions,
): Promise<PostOutcome> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { kind: "refused", error: "not a URL" };
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    return { kind: "refused", error: `scheme ${u.protocol} is not http(s)` };
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const signal = AbortSignal.timeout(opts.timeoutMs);

  let address: LookupAddress;
  if (isIP(host)) {
    address = { address: host, family: isIP(host) };
  } else {
    let all: LookupAddress[];
    try {
      all = await Promise.race([(opts.resolve ?? defaultResolve)(host), aborted(signal)]);
    } catch (err) {
      return {
        kind: "failed",
        error: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
      };
    }
    if (all.length === 0) return { kind: "failed", error: `${host} resolves to no address` };
    // Every answer is checked: a name that resolves to one public and one private address is refused.
    const bad = all.find((a) => !opts.allowPrivate && isPrivateAddress(a.address));
    if (bad)
      return {
        kind: "refused",
        error: `${host} resolves to ${bad.address}, a private, loopback or link-local address (WEBHOOK_ALLOW_PRIVATE is off)`,
      };
    address = all[0]!;
  }
  if (!opts.allowPrivate && isPrivateAddress(address.address)) {
    return {
      kind: "refused",
      error: `${address.address} is a private, loopback or link-local address (WEBHOOK_ALLOW_PRIVATE is off)`,
    };
  }

  // The connection uses the address checked above, whatever the name would resolve to now.
  const pinned: LookupFunction = (_host, options, cb) => {
    if ((options as { all?: boolean }).all) (cb as (e: null, a: LookupAddress[]) => void)(null, [address]);
    else cb(null, address.address, address.family);
  };
  const payload = Buffer.from(body, "utf8");
  const send = u.protocol === "https:" ? httpsRequest : httpRequest;
  let res: IncomingMessage;
  try {
    res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(
        {
          method: "POST",
          host,
          port: u.port || undefined,
          path: `${u.pathname}${u.search}`,
          headers: { ...headers, "content-length": String(payload.length) },
          lookup: pinned,
          // TLS checks the certificate against the name in the URL, not the address.
          ...(u.protocol === "https:" && !isIP(host) ? { servername: host } : {}),
          signal,
          agent: false,
        },
        resolve,
      );
      req.on("error", reject);
      req.end(payload);
    });
  } catch (err) {
    if (signal.aborted) return { kind: "failed", error: `no answer within ${opts.timeoutMs} ms` };
    return { kind: "failed", error: `${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}` };
  }
  const status = res.statusCode ?? 0;
  const location = typeof res.headers.location === "string" ? res.headers.location.slice(0, 500) : undefined;
  let text = "";
  try {
    const read = await readBodyCapped(
      new Response(Readable.toWeb(res) as ReadableStream<Uint8Array>),
      opts.maxBodyBytes ?? 64 * 1024,
    );
    text = read.text;
  } catch {
    // The status is the answer; a body cut short by the deadline or the peer changes nothing.
    res.destroy();
  }
  return { kind: "answered", status, ...(location && { location }), body: text };
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(new Error("timeout"));
    signal.addEventListener("abort", () => reject(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })), {
      once: true,
    });
  });
}
