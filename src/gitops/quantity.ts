// Kubernetes resource quantities (`500m`, `8Gi`, `4`, `"10"`), multiplied and capped while
// keeping the unit the file already uses: 8Gi × 1.25 = 10Gi, 500m × 1.5 = 750m. When the result
// is not a whole number in that unit it steps down to a smaller unit of the same family
// (1Gi × 1.5 = 1536Mi, cpu 1 × 1.5 = 1500m) and rounds up only at the smallest sensible unit.

/** How a value may be rounded: cpu goes down to millicores, bytes and counts to whole units. */
export type QuantityMode = "cpu" | "bytes" | "count" | "number";

export type Quantity = { base: number; suffix: string };

const BINARY: ReadonlyArray<[string, number]> = [
  ["Ei", 2 ** 60],
  ["Pi", 2 ** 50],
  ["Ti", 2 ** 40],
  ["Gi", 2 ** 30],
  ["Mi", 2 ** 20],
  ["Ki", 2 ** 10],
  ["", 1],
];
const DECIMAL: ReadonlyArray<[string, number]> = [
  ["E", 1e18],
  ["P", 1e15],
  ["T", 1e12],
  ["G", 1e9],
  ["M", 1e6],
  ["k", 1e3],
  ["", 1],
  ["m", 1e-3],
  ["u", 1e-6],
  ["n", 1e-9],
];
const MULTIPLIER = new Map([...BINARY, ...DECIMAL]);

// The exponent form (1e3) must be tried before the exa suffix (1E).
const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;

/** Float noise away: 100 × 1.1 is 110, not 110.00000000000001. */
const clean = (x: number) => Number(x.toPrecision(12));

export function parseQuantity(value: unknown): Quantity | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? { base: value, suffix: "" } : undefined;
  if (typeof value !== "string") return undefined;
  const m = QUANTITY.exec(value.trim());
  if (!m) return undefined;
  const mantissa = Number(m[1]);
  const suffix = m[2] ?? "";
  if (/^[eE][+-]?\d+$/.test(suffix)) return { base: clean(mantissa * 10 ** Number(suffix.slice(1))), suffix: "" };
  return { base: clean(mantissa * MULTIPLIER.get(suffix)!), suffix };
}

/** The rounding mode a ResourceQuota `spec.hard` key or container resource name calls for. */
export function quantityMode(key: string, value: unknown): QuantityMode {
  const k = key.toLowerCase();
  if (k.includes("cpu")) return "cpu";
  if (k.includes("memory") || k.includes("storage") || k.startsWith("hugepages-") || k.includes(".hugepages-"))
    return "bytes";
  const q = parseQuantity(value);
  if (q?.suffix === "m") return "cpu";
  if (q && q.suffix !== "") return "bytes";
  return q && !Number.isInteger(q.base) ? "number" : "count";
}

/** The units to try, from the value's own unit down to the smallest one the mode allows. */
function ladder(suffix: string, mode: QuantityMode): string[] {
  const family = BINARY.some(([s]) => s === suffix && s !== "") ? BINARY : DECIMAL;
  const units = family.map(([s]) => s);
  const from = Math.max(0, units.indexOf(suffix));
  const bottom = mode === "cpu" ? Math.max(from, units.indexOf("m")) : Math.max(from, units.indexOf(""));
  return units.slice(from, bottom + 1);
}

/**
 * `base` written in the style of `like` (its unit, or a smaller one of the same family), rounded
 * up or down at the smallest unit. A plain number stays a number when `like` was one.
 */
export function formatQuantity(
  base: number,
  like: { suffix: string; numeric: boolean },
  mode: QuantityMode,
  round: "up" | "down",
): string | number {
  if (mode === "number") return clean(base);
  const units = ladder(like.suffix, mode);
  for (const unit of units) {
    const v = clean(base / MULTIPLIER.get(unit)!);
    if (Number.isInteger(v)) return unit === "" && like.numeric ? v : `${v}${unit}`;
  }
  const unit = units[units.length - 1]!;
  const v = clean(base / MULTIPLIER.get(unit)!);
  const n = round === "up" ? Math.ceil(v) : Math.floor(v);
  return unit === "" && like.numeric ? n : `${n}${unit}`;
}

export type Scaled = { value: string | number; changed: boolean; capped: boolean };

/**
 * `current` × `factor`, rounded up, and never above `cap` (base units; a cap is rounded down).
 * A value already at or above the cap is left as it is: this never lowers anything. `capLike`
 * is a quantity whose unit the cap is written in (default: the current value's).
 */
export function scaleQuantity(
  current: unknown,
  factor: number,
  opts: { mode?: QuantityMode; key?: string; cap?: number; capLike?: unknown } = {},
): Scaled | undefined {
  const q = parseQuantity(current);
  if (!q || !(factor > 0)) return undefined;
  const mode = opts.mode ?? quantityMode(opts.key ?? "", current);
  const like = { suffix: q.suffix, numeric: typeof current === "number" };
  const cap = opts.cap;
  const unchanged: Scaled = {
    value: current as string | number,
    changed: false,
    capped: cap !== undefined && q.base >= cap,
  };
  if (cap !== undefined && q.base >= cap && factor >= 1) return unchanged;

  let value = formatQuantity(clean(q.base * factor), like, mode, "up");
  let capped = false;
  if (cap !== undefined && parseQuantity(value)!.base > cap) {
    // A cap derived from a baseline reads best in the baseline's unit: 16Gi, not 16384Mi.
    const capStyle = parseQuantity(opts.capLike);
    value = formatQuantity(
      cap,
      capStyle ? { suffix: capStyle.suffix, numeric: typeof opts.capLike === "number" } : like,
      mode,
      "down",
    );
    capped = true;
  }
  const after = parseQuantity(value)!.base;
  if (after === q.base || (capped && after < q.base)) return { ...unchanged, capped };
  return { value, changed: true, capped };
}
