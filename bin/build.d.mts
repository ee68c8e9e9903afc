// Types of bin/build.mjs, for TypeScript callers (bench/startup.ts).
export const ROOT: string;
export const DIST: string;
/** `root`: the installation to look at (default: this one). */
export function distIsFresh(root?: string): boolean;
/** `outDir`: where to build (default: dist/); `typeCheck: false` only emits. */
export function build(outDir?: string, opts?: { typeCheck?: boolean }): Promise<void>;
