// Baselines on raw JetStream (the @nats-io client alone, none of Pitcrew's code): a publish →
// consume round trip, and publish + consume + ack throughput. A file-backed WorkQueue stream
// with an explicit-ack durable consumer, as PITCREW_TASKS is; the stream is deleted after.
import { randomBytes } from "node:crypto";
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NATS_URL } from "../test/helpers/services.ts";
import { latencySummary } from "./lib.ts";

async function withStream<T>(
  fn: (ctx: {
    publish: (data: Uint8Array) => Promise<unknown>;
    messages: AsyncIterable<{ ack(): void; data: Uint8Array }>;
  }) => Promise<T>,
): Promise<T> {
  const nc = await connect({ servers: [NATS_URL] });
  const name = `BENCH_RAW_${randomBytes(4).toString("hex").toUpperCase()}`;
  const subject = `benchraw.${name.toLowerCase()}`;
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.add({
      name,
      subjects: [subject],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
    });
    await jsm.consumers.add(name, { durable_name: "bench", ack_policy: AckPolicy.Explicit });
    const js = jetstream(nc);
    const consumer = await js.consumers.get(name, "bench");
    const messages = await consumer.consume({ max_messages: 256 });
    try {
      return await fn({ publish: (data) => js.publish(subject, data), messages });
    } finally {
      messages.stop();
    }
  } finally {
    await jsm.streams.delete(name).catch(() => false);
    await nc.close();
  }
}

/** One message at a time: from the publish call to the consumer holding it, then acked. */
export function rawRoundTrip(n: number) {
  return withStream(async ({ publish, messages }) => {
    const it = messages[Symbol.asyncIterator]();
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await publish(new Uint8Array(64));
      const m = await it.next();
      samples.push(performance.now() - t0);
      m.value.ack();
    }
    return latencySummary(samples);
  });
}

/** `n` messages published (acknowledged by the server), consumed and acked, consumer running throughout. */
export function rawThroughput(n: number) {
  return withStream(async ({ publish, messages }) => {
    const body = new Uint8Array(256);
    const t0 = performance.now();
    const consumed = (async () => {
      let got = 0;
      for await (const m of messages) {
        m.ack();
        if (++got >= n) return;
      }
    })();
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < n; i++) {
      const p = publish(body).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 256) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    await consumed;
    return { messages: n, per_s: Math.round(n / ((performance.now() - t0) / 1000)) };
  });
}
