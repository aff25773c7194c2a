// What the index accepts: its limits, and field checks that throw an error naming the item and
// the field, with `kind` 'input' (a call's arguments) or 'format' (an imported file). Records read
// back from storage get the cheap checks too (a damaged store must not break a search).
import { kindError } from '../errors.js';

/** The vocabulary of BGE-M3's tokenizer (XLM-R): token ids are below this. */
export const VOCAB_SIZE = 250_002;
/** Widest vector accepted (BAAI/bge-m3: 1024). */
export const MAX_DIM = 8192;
/** Longest window in tokens, `<s>` and `</s>` included (BAAI/bge-m3's longest input). */
export const MAX_WINDOW_TOKENS = 8192;
/** Longest document text (UTF-16 units), most windows per document, longest id (UTF-16 units),
 *  largest `meta` (bytes of its JSON). */
export const MAX_TEXT = 50_000_000;
export const MAX_WINDOWS = 100_000;
export const MAX_ID = 1000;
export const MAX_META_BYTES = 1 << 20;
/** Largest lexical weight (real weights are below 1; a random-weight model's a few). */
export const MAX_SPARSE_WEIGHT = 1e4;
/** |‖v‖ - 1| allowed for f32 unit vectors (dense, ColBERT rows), and for vectors read back from
 *  int8 / f16 codes (quantisation moves the norm a little). */
export const UNIT_TOLERANCE = 1e-3;
export const CODED_UNIT_TOLERANCE = 0.02;

/** An Error with `kind` (see ErrorKind in index.d.ts): the package's `kindError`. */
export const indexError = (kind, message) => kindError(kind, message);

export const isObject = v => v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v);

/** Field checks for one item: `where` names it ("items[3] (id “a”)"), `kind` is the error kind. */
export class Checker {
  constructor(kind, where) {
    this.kind = kind;
    this.where = where;
  }
  fail(field, problem) {
    throw indexError(this.kind, `${this.where}${field ? `: ${field}` : ''} ${problem}`);
  }
  int(v, field, lo, hi) {
    if (!Number.isSafeInteger(v) || v < lo || v > hi) this.fail(field, `must be a whole number from ${lo} to ${hi} (it is ${show(v)})`);
    return v;
  }
  num(v, field, lo = -Infinity, hi = Infinity) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) this.fail(field, `must be a finite number${lo > -Infinity ? ` from ${lo}` : ''}${hi < Infinity ? ` to ${hi}` : ''} (it is ${show(v)})`);
    return v;
  }
  str(v, field, max, { empty = true } = {}) {
    if (typeof v !== 'string') this.fail(field, `must be text (it is ${show(v)})`);
    if (!empty && !v.length) this.fail(field, 'is empty');
    if (v.length > max) this.fail(field, `is ${v.length} characters long; at most ${max}`);
    return v;
  }
  /** A typed array of class `T` and length `len` (null: any). */
  array(v, T, field, len = null) {
    if (!(v instanceof T)) this.fail(field, `must be a ${T.name} (it is ${show(v)})`);
    if (len != null && v.length !== len) this.fail(field, `holds ${v.length} values; it must hold ${len}`);
    return v;
  }
  /** Every value finite. */
  finite(v, field) {
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) this.fail(field, `holds ${v[i]} at [${i}], not a finite number`);
    return v;
  }
  /** Every value below `below` (token ids: the vocabulary). */
  below(v, field, below = VOCAB_SIZE) {
    for (let i = 0; i < v.length; i++) if (v[i] >= below) this.fail(field, `holds ${v[i]} at [${i}]; values are below ${below}`);
    return v;
  }
  /** Rows of `dim` values, each of unit length within `tol`; `norm2(r)` gives a row's squared norm. */
  unitRows(rows, norm2, field, tol) {
    for (let r = 0; r < rows; r++) {
      const n = Math.sqrt(norm2(r));
      if (!(Math.abs(n - 1) <= tol)) this.fail(rows === 1 ? field : `${field} row ${r}`, `has length ${n}; it must be a unit vector (within ${tol})`);
    }
  }
  /** A lexical vector: distinct token ids, weights finite and in (0, MAX_SPARSE_WEIGHT]. */
  sparse(ids, weights, field) {
    this.below(ids, `${field}.ids`);
    if (weights.length !== ids.length) this.fail(`${field}.weights`, `holds ${weights.length} values for ${ids.length} ids`);
    if (new Set(ids).size !== ids.length) this.fail(`${field}.ids`, 'repeats a token id');
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i];
      if (!(w > 0 && w <= MAX_SPARSE_WEIGHT)) this.fail(`${field}.weights`, `holds ${w} at [${i}]; weights are above 0 and at most ${MAX_SPARSE_WEIGHT}`);
    }
  }
  /** A window's span in its text and its token range: returns { start, end, tokenStart, tokenEnd }. */
  window(w, textLength, field) {
    const start = this.int(w.start, `${field}.start`, 0, textLength);
    const end = this.int(w.end, `${field}.end`, start, textLength);
    const tokenStart = this.int(w.tokenStart, `${field}.tokenStart`, 0, 4 * MAX_TEXT);
    const tokenEnd = this.int(w.tokenEnd, `${field}.tokenEnd`, tokenStart, tokenStart + MAX_WINDOW_TOKENS - 2);
    return { start, end, tokenStart, tokenEnd };
  }
  /** `<s>` ... `</s>`: n ids, each in the vocabulary. */
  inputIds(v, n, field) {
    this.array(v, Uint32Array, field, n);
    this.below(v, field);
    if (v[0] !== 0 || v[n - 1] !== 2) this.fail(field, 'must start with <s> (0) and end with </s> (2)');
    return v;
  }
  /** ColBERT spans [start, end) per row, inside the text. */
  spans(v, rows, textLength, field) {
    this.array(v, Uint32Array, field, 2 * rows);
    for (let r = 0; r < rows; r++) {
      if (v[2 * r] > v[2 * r + 1] || v[2 * r + 1] > textLength) this.fail(field, `row ${r} spans [${v[2 * r]}, ${v[2 * r + 1]}), not inside the text (${textLength} characters)`);
    }
    return v;
  }
}

/** A short, printable form of any value (NaN and typed arrays included). */
export function show(v) {
  if (typeof v === 'number') return String(v);
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${v.length}`;
  if (v === undefined) return 'missing';
  let s;
  try { s = JSON.stringify(v); } catch { s = String(v); }
  s ??= String(v);
  return s.length > 60 ? s.slice(0, 57) + '…' : s;
}

/** "items[3] (id “a”)" / "document 3 (id “a”)", for messages. */
export function label(prefix, id) {
  return typeof id === 'string' && id ? `${prefix} (id “${id.length > 60 ? id.slice(0, 59) + '…' : id}”)` : prefix;
}
