import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import type { z } from "zod";

// Folders of YAML that operators edit (skills/, schedules/, webhooks/), GitOps style: every
// `*.yaml`/`*.yml` is validated with its zod schema; a bad file is reported with its path, line
// and message and skipped, and the others still load. One loader, so every folder behaves alike.

export type FileProblem = { file: string; line: number; message: string };

/** `unreadableFolder`: the folder itself could not be listed, so `items` says nothing about it. */
export type LoadedFolder<T> = {
  items: Array<{ item: T; file: string }>;
  problems: FileProblem[];
  unreadableFolder?: boolean;
};

export function formatProblem(p: FileProblem): string {
  return `${p.file}:${p.line}: ${p.message}`;
}

/** The file as it is shown: relative to the working directory when it is below it. */
function shownPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith("..") ? rel : file;
}

/**
 * Loads every YAML file of `dir` with `schema`. `nameOf` names an item: a second item with a name
 * already loaded is a problem (`what` says what it is, e.g. "skill").
 */
export function loadYamlFolder<S extends z.ZodType>(
  dir: string,
  schema: S,
  opts: { what: string; nameOf: (item: z.output<S>) => string },
): LoadedFolder<z.output<S>> {
  const items: Array<{ item: z.output<S>; file: string }> = [];
  const problems: FileProblem[] = [];
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      items,
      problems: [
        {
          file: dir,
          line: 0,
          message:
            code === "ENOENT"
              ? `${opts.what}s folder not found`
              : `${opts.what}s folder cannot be read (${code ?? "error"})`,
        },
      ],
      unreadableFolder: true,
    };
  }
  for (const name of names) {
    const file = join(dir, name);
    const shown = shownPath(file);
    // One file that cannot be read (a dangling link, no permission, removed meanwhile) is a problem
    // of that file only: the others still load.
    let text: string;
    try {
      if (!statSync(file).isFile()) continue;
      text = readFileSync(file, "utf8");
    } catch (err) {
      problems.push({
        file: shown,
        line: 0,
        message: `cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      });
      continue;
    }
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      problems.push({ file: shown, line: lc.linePos(e.pos[0]).line, message: e.message.split("\n")[0]! });
      continue;
    }
    const parsed = schema.safeParse(doc.toJS());
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        // Point at the deepest node of the path that exists in the file.
        let line = 1;
        for (let n = issue.path.length; n >= 0; n--) {
          const node = doc.getIn(issue.path.slice(0, n) as (string | number)[], true) as
            | { range?: [number, number, number] }
            | undefined;
          if (node?.range) {
            line = lc.linePos(node.range[0]).line;
            break;
          }
        }
        const where = issue.path.length ? `${issue.path.join(".")}: ` : "";
        problems.push({ file: shown, line, message: `${where}${issue.message}` });
      }
      continue;
    }
    const item = parsed.data as z.output<S>;
    if (items.some((i) => opts.nameOf(i.item) === opts.nameOf(item))) {
      problems.push({ file: shown, line: 1, message: `${opts.what} "${opts.nameOf(item)}" is defined twice` });
      continue;
    }
    items.push({ item, file: shown });
  }
  return { items, problems };
}
