import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";

// Runs an untrusted command (a coding agent, git against a remote) as its own process group, so a
// timeout or a cancel ends everything it started, not just the direct child. Never a shell: the
// command is an argv array, and the environment is exactly the one given.

export type OutputStream = "stdout" | "stderr";

export type RunCommandOptions = {
  /** argv: the program and its arguments. */
  command: string[];
  cwd: string;
  /** The complete environment of the command: nothing is inherited from this process. */
  env: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Bound on each captured tail (stdoutTail, stderrTail), in bytes; older output is dropped. */
  maxOutputBytes: number;
  /** Called for each output line as it arrives (without the newline); longer lines are cut. */
  onLine?: (stream: OutputStream, line: string) => void;
  /** Longest line handed to onLine, in characters. Default 4000. */
  maxLineChars?: number;
  /** Time between SIGTERM and SIGKILL of the process group. Default 1000 ms. */
  killGraceMs?: number;
  /** Run as this user and group (the caller must be root); supplementary groups are dropped. */
  uid?: number;
  gid?: number;
};

export type RunResult = {
  /** Null when the command was ended by a signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  stdoutTail: string;
  stderrTail: string;
  /** True when output was dropped from a tail or a line was cut. */
  truncated: boolean;
};

export const LINE_CUT_MARK = " …[line cut]";

/**
 * Resolves once the command has exited and nothing is left in its process group: on timeout or
 * abort the group gets SIGTERM, then SIGKILL after the grace; when the command exits by itself,
 * whatever it left running in its group (background jobs) is ended the same way. Rejects only when
 * the command cannot be started (ENOENT, EACCES, bad cwd).
 */
export async function runCommand(opts: RunCommandOptions): Promise<RunResult> {
  const [file, ...args] = opts.command;
  if (!file) throw new Error("runCommand: empty command");
  const grace = opts.killGraceMs ?? 1000;
  const stdout = new Tail(opts.maxOutputBytes);
  const stderr = new Tail(opts.maxOutputBytes);
  const emit = (stream: OutputStream) => (line: string) => {
    try {
      opts.onLine?.(stream, line);
    } catch {
      // A failing consumer must not break the run or leave the group behind.
    }
  };
  const maxLine = opts.maxLineChars ?? 4000;
  const outLines = new LineSplitter(maxLine, emit("stdout"));
  const errLines = new LineSplitter(maxLine, emit("stderr"));

  if (opts.signal?.aborted)
    return {
      exitCode: null,
      signal: null,
      timedOut: false,
      cancelled: true,
      stdoutTail: "",
      stderrTail: "",
      truncated: false,
    };

  const identity = opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.gid ?? opts.uid };
  const child = spawn(file, args, {
    cwd: opts.cwd,
    env: opts.env,
    detached: true,
    shell: false,
    stdio: ["ignore", "pipe", "pipe"],
    ...identity,
  });
  const started = await new Promise<Error | undefined>((resolve) => {
    child.once("spawn", () => resolve(undefined));
    child.once("error", resolve);
  });
  if (started) throw started;
  const pgid = child.pid!;
  child.on("error", () => {}); // later errors (a failed kill) must not crash the process

  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout.push(chunk);
    outLines.push(chunk);
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr.push(chunk);
    errLines.push(chunk);
  });

  let timedOut = false;
  let cancelled = false;
  let ending: Promise<void> | undefined;
  const end = () => (ending ??= endGroup(pgid, grace));
  const timer = setTimeout(() => {
    if (!cancelled) timedOut = true;
    void end();
  }, opts.timeoutMs);
  const onAbort = () => {
    if (!timedOut) cancelled = true;
    void end();
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.signal?.aborted) onAbort(); // aborted while the process was starting: no event comes

  const exit = await exited;
  clearTimeout(timer);
  opts.signal?.removeEventListener("abort", onAbort);
  if (ending) await ending;
  else if (await groupAlive(pgid)) await end();

  // The pipes close once every holder is gone; one that escaped the group (setsid) could keep them
  // open forever, so stop waiting after a moment.
  const late = await Promise.race([closed.then(() => false), sleep(1000).then(() => true)]);
  if (late) {
    child.stdout!.destroy();
    child.stderr!.destroy();
  }
  outLines.end();
  errLines.end();

  return {
    exitCode: exit.code,
    signal: exit.signal,
    timedOut,
    cancelled,
    stdoutTail: stdout.text(),
    stderrTail: stderr.text(),
    truncated: stdout.truncated || stderr.truncated || outLines.cut || errLines.cut,
  };
}

async function endGroup(pgid: number, graceMs: number): Promise<void> {
  signalGroup(pgid, "SIGTERM");
  if (await waitGroupGone(pgid, graceMs)) return;
  signalGroup(pgid, "SIGKILL");
  // SIGKILL cannot be ignored; only a process stuck in the kernel (D state) outlives this.
  await waitGroupGone(pgid, 5000);
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

async function waitGroupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!(await groupAlive(pgid))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(25);
  }
}

/**
 * Whether any process of the group still runs. kill(-pgid, 0) also succeeds for zombies, and an
 * orphaned grandchild stays a zombie until init reaps it (never, under an init that does not reap,
 * like `node` as PID 1 in a container), so on Linux the members are looked up in /proc.
 */
async function groupAlive(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  if (process.platform !== "linux") return true;
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return true;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    // "pid (comm) state ppid pgrp …"; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") return true;
  }
  return false;
}

/** The last `max` bytes of a stream. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly max: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.max) {
      const first = this.chunks[0]!;
      const excess = this.size - this.max;
      this.truncated = true;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }

  text(): string {
    const buf = Buffer.concat(this.chunks);
    // The cut may have landed inside a UTF-8 sequence: skip its continuation bytes.
    let start = 0;
    if (this.truncated) while (start < buf.length && start < 3 && (buf[start]! & 0xc0) === 0x80) start++;
    return buf.subarray(start).toString("utf8");
  }
}

class LineSplitter {
  private decoder = new StringDecoder("utf8");
  private buf = "";
  /** Inside a line that was already cut and delivered: drop until its newline. */
  private dropping = false;
  cut = false;
  constructor(
    private readonly max: number,
    private readonly emit: (line: string) => void,
  ) {}

  push(chunk: Buffer): void {
    this.feed(this.decoder.write(chunk));
  }

  end(): void {
    this.feed(this.decoder.end());
    if (!this.dropping && this.buf.length > 0) this.emit(stripCr(this.buf));
    this.buf = "";
  }

  private feed(text: string): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf("\n", start);
      const stop = nl < 0 ? text.length : nl;
      if (!this.dropping) {
        this.buf += text.slice(start, stop);
        if (this.buf.length > this.max) {
          this.emit(this.buf.slice(0, this.max) + LINE_CUT_MARK);
          this.cut = true;
          this.buf = "";
          this.dropping = true;
        }
      }
      if (nl < 0) return;
      if (this.dropping) this.dropping = false;
      else this.emit(stripCr(this.buf));
      this.buf = "";
      start = nl + 1;
    }
  }
}

const stripCr = (line: string) => (line.endsWith("\r") ? line.slice(0, -1) : line);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
