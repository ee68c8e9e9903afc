import { AppError, invalid } from "../../src/shared/errors.ts";

// The pure parts of running a coding agent: command templates, its environment, what may be shown
// of its output, and the repository URL it may clone.

export type CommandValues = { prompt: string; model?: string; workdir: string };

const PLACEHOLDER = /\{\{\s*([A-Za-z_]+)\s*\}\}/;
const PLACEHOLDERS = new Set(["{{prompt}}", "{{model}}", "{{workdir}}"]);

/** Throws when a template is empty, starts with a placeholder, or has a placeholder inside an argument. */
export function checkCommandTemplates(commands: Record<string, string[]>): void {
  for (const [name, template] of Object.entries(commands)) {
    const bad = (why: string) =>
      new AppError("invalid", "agent.bad_command_template", `agent command "${name}": ${why}`);
    if (!Array.isArray(template) || template.length === 0) throw bad("must be a non-empty argv array");
    if (PLACEHOLDERS.has(template[0]!)) throw bad("the program must not be a placeholder");
    for (const arg of template) {
      if (typeof arg !== "string") throw bad("arguments must be strings");
      if (PLACEHOLDER.test(arg) && !PLACEHOLDERS.has(arg)) {
        throw bad(`"${arg}": only {{prompt}}, {{model}} and {{workdir}} exist, each as a whole argument`);
      }
    }
  }
}

/**
 * Substitutes whole-argument placeholders. Without a model, `{{model}}` is dropped together with
 * the flag right before it (`--model {{model}}` → nothing), so the CLI uses its own default.
 */
export function renderCommand(template: string[], values: CommandValues): string[] {
  const argv: string[] = [];
  for (const arg of template) {
    if (arg === "{{prompt}}") argv.push(values.prompt);
    else if (arg === "{{workdir}}") argv.push(values.workdir);
    else if (arg === "{{model}}") {
      if (values.model !== undefined) argv.push(values.model);
      else if (argv.length > 1 && argv[argv.length - 1]!.startsWith("-")) argv.pop();
    } else argv.push(arg);
  }
  return argv;
}

export const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";

/**
 * The agent's complete environment: PATH and LANG from the runner, HOME and TMPDIR inside the
 * workspace (so whatever the agent writes there is removed with it), the variables configuration
 * allows by name, and the task's own. Nothing else of the runner's environment gets through.
 */
export function buildAgentEnv(a: {
  runnerEnv: Record<string, string | undefined>;
  allowEnv: string[];
  home: string;
  tmpDir: string;
  task: Record<string, string>;
}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of a.allowEnv) {
    const value = a.runnerEnv[name];
    if (value !== undefined) env[name] = value;
  }
  return {
    ...env,
    PATH: a.runnerEnv.PATH ?? DEFAULT_PATH,
    LANG: a.runnerEnv.LANG ?? "C.UTF-8",
    HOME: a.home,
    TMPDIR: a.tmpDir,
    ...a.task,
  };
}

// Shorter values ("true", "1", "en") are too common in ordinary output to be masked usefully.
const MIN_SECRET_CHARS = 8;
// Names whose values are settings, not secrets (the askpass helper's pinned URL and git's config).
const NOT_SECRET = new Set([
  "PATH",
  "LANG",
  "HOME",
  "TMPDIR",
  "GIT_ASKPASS",
  "PITCREW_GIT_URL",
  "PITCREW_GIT_USERNAME",
  "GIT_CONFIG_KEY_0",
  "GIT_CONFIG_KEY_1",
  "GIT_CONFIG_KEY_2",
]);

/** Values that must not appear in events or errors: allowed variables and git's environment. */
export function secretValues(
  runnerEnv: Record<string, string | undefined>,
  allowEnv: string[],
  gitEnv: Record<string, string>,
): string[] {
  const values = [
    ...allowEnv.filter((n) => !NOT_SECRET.has(n)).map((n) => runnerEnv[n]),
    ...Object.entries(gitEnv)
      .filter(([n]) => !NOT_SECRET.has(n))
      .map(([, v]) => v),
  ];
  const long = values.filter((v): v is string => typeof v === "string" && v.length >= MIN_SECRET_CHARS);
  return [...new Set(long)].sort((x, y) => y.length - x.length);
}

export function scrub(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join("***");
  return out;
}

/** The end of `text`: at most `lines` lines and `maxChars` characters. */
export function lastLines(text: string, lines: number, maxChars: number): string {
  const tail = text.replace(/\s+$/, "").split("\n").slice(-lines).join("\n");
  return tail.length > maxChars ? `…${tail.slice(-maxChars)}` : tail;
}

/** Paths from `git status --porcelain -z`, sorted; a rename lists its new path. */
export function parsePorcelainZ(out: string): string[] {
  const files = new Set<string>();
  const parts = out.split("\0");
  for (let i = 0; i < parts.length; i++) {
    const entry = parts[i]!;
    if (entry.length < 4) continue;
    const xy = entry.slice(0, 2);
    files.add(entry.slice(3));
    if (xy.includes("R") || xy.includes("C")) i++; // the next part is the rename's source
  }
  return [...files].sort();
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const ALLOWED_SCHEMES = new Set(["https", "http", "ssh", "git", "file"]);

/**
 * A repository URL the runner may clone: https/http/ssh/git/file URLs, scp-style `user@host:path`,
 * or an absolute local path. Credentials never travel in the URL (they come through git's
 * environment), and nothing that git would read as an option or a remote helper (`ext::`).
 */
export function checkRepoUrl(url: string): void {
  const shown = maskUrl(url);
  const bad = (why: string) => invalid("agent.bad_repo_url", `repository URL ${shown}: ${why}`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (url.startsWith("-") || /[\s\0-\x1f\x7f]/.test(url)) throw bad("not a URL");
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (!ALLOWED_SCHEMES.has(scheme)) throw bad(`the ${scheme} scheme is not allowed`);
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw bad("not a URL");
    }
    if (u.password || ((scheme === "https" || scheme === "http") && u.username)) {
      throw invalid(
        "agent.credentials_in_url",
        "repository URLs must not carry credentials; configure them in the runner's git environment",
      );
    }
    return;
  }
  if (url.includes("::")) throw bad("remote helpers are not allowed");
  if (url.startsWith("/")) return;
  const scp = /^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:(.+)$/.exec(url);
  if (!scp) throw bad("not an absolute path or a URL");
  // `user:secret@host:path` parses as host "user" with the secret in the path.
  if (/^[^/]*@/.test(scp[1]!))
    throw invalid(
      "agent.credentials_in_url",
      "repository URLs must not carry credentials; configure them in the runner's git environment",
    );
}

/** The URL as it may be shown: any userinfo masked. */
function maskUrl(url: string): string {
  if (SCHEME.test(url)) {
    try {
      const u = new URL(url);
      if (u.username) u.username = "***";
      if (u.password) u.password = "***";
      return u.toString();
    } catch {
      return url.replace(/\/\/[^/]*@/, "//***@");
    }
  }
  return url.replace(/^[^/]*@/, "***@");
}
