import { createServer, connect, type Server, type Socket } from "node:net";

const DEFAULT_PORTS: Record<string, number> = { "mysql:": 3306, "nats:": 4222 };

/**
 * A TCP proxy in front of the real server `serverUrl` names, that a test can take down and bring
 * back: down() cuts every connection and refuses new ones, as a stopped server would; up() accepts
 * again on the same port. Its `url` is `serverUrl` through the proxy (scheme, credentials and
 * database kept). Lets tests observe outages without stopping the shared NATS or MariaDB.
 */
export async function startTcpProxy(serverUrl: string) {
  const server_ = new URL(serverUrl);
  const target = { host: server_.hostname, port: Number(server_.port || DEFAULT_PORTS[server_.protocol]) };
  const sockets = new Set<Socket>();
  let isUp = true;
  let server: Server | undefined;
  let port = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        if (!isUp) return client.destroy();
        const upstream = connect(target);
        sockets.add(client);
        sockets.add(upstream);
        client.pipe(upstream).pipe(client);
        const close = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on("error", close).on("close", close);
        upstream.on("error", close).on("close", close);
      });
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        port = (server!.address() as { port: number }).port;
        resolve();
      });
    });

  await listen();
  return {
    get port() {
      return port;
    },
    get url() {
      const through = new URL(serverUrl);
      through.hostname = "127.0.0.1";
      through.port = String(port);
      return through.toString();
    },
    async down() {
      isUp = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
      await new Promise<void>((r) => server!.close(() => r()));
    },
    async up() {
      isUp = true;
      await listen();
    },
    async close() {
      isUp = false;
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => (server?.listening ? server.close(() => r()) : r()));
    },
  };
}
