import type { RequestHandler } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach } from "vitest";

/**
 * An msw server on which a request that no handler answers fails the test that made it. msw's
 * "error" strategy alone only logs and makes the request fail inside the code under test, which
 * may retry, fall back or log the error and let the test pass. Here `listen()` records every such
 * request (and still fails it, as "error" does), and the afterEach this registers, in the scope it
 * is called from, fails the test during which one escaped; afterAll catches those of the hooks.
 */
export function strictMockServer(...handlers: RequestHandler[]): ReturnType<typeof setupServer> {
  const server = setupServer(...handlers);
  const escaped: string[] = [];
  const listen = server.listen.bind(server);
  server.listen = () =>
    listen({
      onUnhandledRequest(request, print) {
        escaped.push(`${request.method} ${request.url}`);
        print.error();
      },
    });
  const check = () => {
    const requests = escaped.splice(0);
    if (requests.length > 0)
      throw new Error(`${requests.length} request(s) escaped msw, no handler answered: ${requests.join(", ")}`);
  };
  afterEach(check);
  afterAll(check);
  return server;
}
