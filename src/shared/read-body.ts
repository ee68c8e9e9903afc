// Reads a fetch Response body without trusting its size: stops at `maxBytes` (the Content-Length
// header can lie or be absent), so a misbehaving server cannot make us buffer an unbounded body.

export type CappedBody = { text: string; bytes: number; truncated: boolean };

export async function readBodyCapped(res: Response, maxBytes: number): Promise<CappedBody> {
  if (!res.body) return { text: "", bytes: 0, truncated: false };
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = maxBytes - bytes;
      if (value.byteLength > room) {
        chunks.push(value.subarray(0, room));
        bytes += room;
        truncated = true;
        break;
      }
      chunks.push(value);
      bytes += value.byteLength;
    }
  } finally {
    // Releases the connection when we stopped early; a no-op after the end of the stream.
    if (truncated) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  return { text: Buffer.concat(chunks).toString("utf8"), bytes, truncated };
}
