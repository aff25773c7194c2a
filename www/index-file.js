// The previous version of this page kept its own index (IndexedDB 'bge-m3-demo', db.js) and its
// own export format (`.m3index` files, format 1). This module reads both, so that nothing of them
// is lost: a v1 file is read and checked here, and each of its documents (like each record of the
// old store, migrate.js) becomes an item of the package index's `add` (`toItem`). Every check
// names the document and the field; nothing is stored unless the whole file passes (and `add`
// checks the vectors again, with its own rules).
//
// v1 file layout: "BGEM3IDX" (8 bytes), u32 LE header length, header JSON (UTF-8), zero padding
// to a multiple of 8, then the typed arrays' bytes, each at an 8-aligned offset. In the header
// every typed array is replaced by { "$a": "f32" | "u32", "o": byte offset in the data, "n":
// length }. Header: { format: 1, app, exportedAt, fingerprint: { hiddenSize, probe, source, … },
// docs: [{ id, name, lang, origin, text, tokens, addedAt, windows: [{ start, end, tokenStart,
// tokenEnd, inputIds, dense, sparse: { ids, weights }, colbert: { data, rows, dim },
// colbertSpans }] }] }.
import { MAX_TEXT, MAX_WINDOW_TOKENS, VOCAB_SIZE, MAX_DIM, MAX_SPARSE_WEIGHT, show } from '../pkg/src/index/checks.js';

export const FORMAT_VERSION = 1;
export const V1_MAGIC = 'BGEM3IDX';

// ── Limits ────────────────────────────────────────────────────────────────────────────────────
/** Largest file imported: the page reads it whole into memory (1 GiB holds ~250,000 tokens of
 *  the full model's 1024-wide ColBERT vectors). */
export const MAX_FILE_BYTES = 1024 ** 3;
/** Largest header (the JSON: texts, names and array references). */
const MAX_HEADER_BYTES = 256 * 1024 ** 2;
const MAX_DOCS = 100_000;
/** Longest name the previous page stored. (Text, window and vocabulary limits: the index's.) */
const MAX_NAME = 1000;
/** Most windows per document: a window moves on by at least half of 8192 tokens. */
const MAX_WINDOWS = 100_000;
/** Dense and ColBERT vectors are unit vectors: no component above 1 (plus rounding). */
const UNIT = 1 + 1e-3;
const ORIGINS = ['file', 'paste', 'sample'];

// ── Import ────────────────────────────────────────────────────────────────────────────────────
/** Reads and checks a v1 index file: { fingerprint, docs } (documents as records, checked field by
 *  field), or throws an Error with kind 'format' whose message says what is wrong and where. */
export async function readIndexFile(blob) {
  try {
    return await readV1(blob);
  } catch (e) {
    e.kind ??= 'format';
    throw e;
  }
}

async function readV1(blob) {
  if (blob.size > MAX_FILE_BYTES) throw new Error(`the file is ${fmtSize(blob.size)}; index files up to ${fmtSize(MAX_FILE_BYTES)} can be imported`);
  if (blob.size < 12) throw new Error('this file is not an index exported from this page');
  const magic = new TextDecoder().decode(new Uint8Array(await blob.slice(0, 12).arrayBuffer()).subarray(0, 8));
  if (magic !== V1_MAGIC) throw new Error('this file is not an index exported from this page');
  const buf = await blob.arrayBuffer();
  const len = new DataView(buf).getUint32(8, true);
  if (len > MAX_HEADER_BYTES) throw new Error(`the index file's header is ${fmtSize(len)}; at most ${fmtSize(MAX_HEADER_BYTES)} is read`);
  if (12 + len > buf.byteLength) throw new Error('the index file is truncated (its header runs past the end)');
  let header;
  try { header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(buf, 12, len))); } catch { throw new Error('the index file is damaged (its header is not JSON)'); }
  if (!isObject(header)) throw new Error('the index file is damaged (its header is not an object)');
  if (header.format !== FORMAT_VERSION) throw new Error(`the index file has format ${show(header.format)}; this page reads format ${FORMAT_VERSION}`);
  const arrays = dataArrays(buf, 12 + len + ((8 - ((12 + len) % 8)) % 8));
  const fingerprint = validFingerprint(arrays.map(header.fingerprint, 'the model fingerprint', { probe: 'f32' }), 'the model fingerprint');
  if (!Array.isArray(header.docs)) throw new Error('the index file is damaged: "docs" is not a list of documents');
  if (header.docs.length > MAX_DOCS) throw new Error(`the index file holds ${header.docs.length} documents; at most ${MAX_DOCS} can be imported`);
  const ids = new Set();
  const docs = header.docs.map((raw, i) => {
    const where = docLabel(raw, i);
    const doc = validDoc(arrays.map(raw, where, DOC_ARRAYS), { dim: fingerprint.hiddenSize, where });
    if (ids.has(doc.id)) fail(where, 'id', `repeats the id of an earlier document (${show(doc.id)})`);
    ids.add(doc.id);
    return doc;
  });
  return { fingerprint, docs };
}

/** Which fields of a document hold typed arrays, and of which kind. */
const WINDOW_ARRAYS = { inputIds: 'u32', dense: 'f32', sparse: { ids: 'u32', weights: 'f32' }, colbert: { data: 'f32' }, colbertSpans: 'u32' };
const DOC_ARRAYS = { windows: [WINDOW_ARRAYS] };

/** The data section of a file: `map(value, where, shape)` replaces the array references that
 *  `shape` names by typed arrays (copies) after checking each against the data's bounds; the
 *  arrays of a file may not claim more bytes than the data holds (no reference read twice into
 *  gigabytes). Values of the wrong form are left for the field checks to name. */
function dataArrays(buf, base) {
  const dataBytes = buf.byteLength - base;
  let claimed = 0;
  const array = (ref, kind, where, field) => {
    if (!isObject(ref) || ref.$a !== kind) fail(where, field, `must be an array of ${kind === 'f32' ? 'floats' : 'whole numbers'} (it is ${show(ref)})`);
    const { o, n } = ref;
    if (!Number.isSafeInteger(o) || o < 0 || o % 4 || !Number.isSafeInteger(n) || n < 0) fail(where, field, `has a bad array reference (${show(ref)})`);
    if (o + 4 * n > dataBytes) fail(where, field, `reaches past the end of the file (bytes ${o}–${o + 4 * n} of ${dataBytes}): the file is truncated or damaged`);
    claimed += 4 * n;
    if (claimed > dataBytes) fail(where, field, 'and the arrays before it claim more bytes than the file holds (overlapping arrays)');
    const T = kind === 'f32' ? Float32Array : Uint32Array;
    return new T(buf.slice(base + o, base + o + 4 * n));
  };
  const map = (v, where, shape, field = '') => {
    if (typeof shape === 'string') return array(v, shape, where, field);
    if (Array.isArray(shape)) return Array.isArray(v) && v.length <= MAX_WINDOWS ? v.map((x, i) => map(x, where, shape[0], `${field}[${i}]`)) : v;
    if (!isObject(v)) return v;
    const out = { ...v };
    for (const [k, s] of Object.entries(shape)) if (k in v) out[k] = map(v[k], where, s, field ? `${field}.${k}` : k);
    return out;
  };
  return { map };
}

// ── Checks ────────────────────────────────────────────────────────────────────────────────────
/** A model fingerprint ({ hiddenSize, probe, source, probeText?, createdAt? }), checked; returns a
 *  copy with the known fields only. */
export function validFingerprint(fp, where = 'the model fingerprint') {
  if (!isObject(fp)) fail(where, '', `is missing or not an object (it is ${show(fp)})`);
  const hiddenSize = int(fp.hiddenSize, where, 'hiddenSize', 1, MAX_DIM);
  return {
    hiddenSize,
    probe: floats(fp.probe, where, 'probe', hiddenSize, UNIT),
    source: str(fp.source, where, 'source', 2000),
    probeText: fp.probeText == null ? undefined : str(fp.probeText, where, 'probeText', 2000),
    createdAt: fp.createdAt == null ? undefined : num(fp.createdAt, where, 'createdAt'),
  };
}

/** A stored document, checked against the vectors' width `dim`; returns a copy with the known
 *  fields only. `where` names it in messages ("document 7 (“Title”)"). */
export function validDoc(d, { dim, where }) {
  if (!isObject(d)) fail(where, '', `is not a document record (it is ${show(d)})`);
  const text = str(d.text, where, 'text', MAX_TEXT, { empty: false });
  const tokens = int(d.tokens, where, 'tokens', 0, 4 * text.length + 16); // a loose bound: a character is a few tokens at most
  if (!Array.isArray(d.windows)) fail(where, 'windows', `must be a list of windows (it is ${show(d.windows)})`);
  if (!d.windows.length || d.windows.length > MAX_WINDOWS) fail(where, 'windows', `must hold 1 to ${MAX_WINDOWS} windows (it holds ${d.windows.length})`);
  return {
    id: str(d.id, where, 'id', 200, { empty: false }),
    name: str(d.name, where, 'name', MAX_NAME),
    lang: d.lang == null ? null : str(d.lang, where, 'lang', 35),
    origin: oneOf(d.origin, where, 'origin', ORIGINS),
    text,
    tokens,
    addedAt: num(d.addedAt, where, 'addedAt'),
    windows: d.windows.map((w, i) => validWindow(w, { dim, text, tokens, where, field: `windows[${i}]` })),
  };
}

function validWindow(w, { dim, text, tokens, where, field }) {
  if (!isObject(w)) fail(where, field, `is not a window (it is ${show(w)})`);
  const f = k => `${field}.${k}`;
  const start = int(w.start, where, f('start'), 0, text.length);
  const end = int(w.end, where, f('end'), start, text.length);
  const tokenStart = int(w.tokenStart, where, f('tokenStart'), 0, tokens);
  const tokenEnd = int(w.tokenEnd, where, f('tokenEnd'), tokenStart, tokens);
  const n = tokenEnd - tokenStart + 2; // <s> ... </s>
  if (n > MAX_WINDOW_TOKENS) fail(where, f('tokenEnd'), `makes a window of ${n} tokens; windows have at most ${MAX_WINDOW_TOKENS}`);
  const inputIds = ids(w.inputIds, where, f('inputIds'), n);
  if (inputIds[0] !== 0 || inputIds[n - 1] !== 2) fail(where, f('inputIds'), 'must start with <s> (0) and end with </s> (2)');
  if (!isObject(w.sparse)) fail(where, f('sparse'), `must be { ids, weights } (it is ${show(w.sparse)})`);
  const sparseIds = ids(w.sparse.ids, where, f('sparse.ids'), null, n);
  if (new Set(sparseIds).size !== sparseIds.length) fail(where, f('sparse.ids'), 'repeats a token id');
  const weights = floats(w.sparse.weights, where, f('sparse.weights'), sparseIds.length, MAX_SPARSE_WEIGHT);
  for (let i = 0; i < weights.length; i++) if (!(weights[i] > 0)) fail(where, f(`sparse.weights[${i}]`), `must be above 0 (it is ${weights[i]})`);
  if (!isObject(w.colbert)) fail(where, f('colbert'), `must be { data, rows, dim } (it is ${show(w.colbert)})`);
  exactly(w.colbert.dim, where, f('colbert.dim'), dim, 'the width of the model\'s vectors');
  const rows = exactly(w.colbert.rows, where, f('colbert.rows'), n - 1, 'one row per token after <s>');
  const spans = ids(w.colbertSpans, where, f('colbertSpans'), 2 * rows, Infinity, text.length + 1);
  for (let r = 0; r < rows; r++) if (spans[2 * r] > spans[2 * r + 1]) fail(where, f(`colbertSpans[${2 * r}]`), 'starts after its end');
  return {
    start, end, tokenStart, tokenEnd, inputIds,
    dense: floats(w.dense, where, f('dense'), dim, UNIT),
    sparse: { ids: sparseIds, weights },
    colbert: { data: floats(w.colbert.data, where, f('colbert.data'), rows * dim, UNIT), rows, dim },
    colbertSpans: spans,
  };
}

// ── Field checks: each returns the value or throws naming the field ──────────────────────────
function fail(where, field, problem) {
  throw new Error(`${where}${field ? `: ${field}` : ''} ${problem}`);
}
const isObject = v => v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v);

function int(v, where, field, lo, hi) {
  if (!Number.isSafeInteger(v) || v < lo || v > hi) fail(where, field, `must be a whole number from ${lo} to ${hi} (it is ${show(v)})`);
  return v;
}
function exactly(v, where, field, want, why) {
  if (v !== want) fail(where, field, `must be ${want}, ${why} (it is ${show(v)})`);
  return v;
}
function num(v, where, field) {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(where, field, `must be a finite number (it is ${show(v)})`);
  return v;
}
function str(v, where, field, max, { empty = true } = {}) {
  if (typeof v !== 'string') fail(where, field, `must be text (it is ${show(v)})`);
  if (!empty && !v.length) fail(where, field, 'is empty');
  if (v.length > max) fail(where, field, `is ${v.length} characters long; at most ${max}`);
  return v;
}
function oneOf(v, where, field, allowed) {
  if (!allowed.includes(v)) fail(where, field, `must be one of ${allowed.join(', ')} (it is ${show(v)})`);
  return v;
}
/** A Float32Array of `len` finite values of magnitude at most `bound`. */
function floats(v, where, field, len, bound) {
  if (!(v instanceof Float32Array)) fail(where, field, `must be an array of floats (it is ${show(v)})`);
  if (v.length !== len) fail(where, field, `holds ${v.length} values; it must hold ${len}`);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!(x >= -bound && x <= bound)) fail(where, field, Number.isFinite(x) ? `holds ${x} at [${i}]; values are at most ${bound} in size` : `holds ${x} at [${i}], not a finite number`);
  }
  return v;
}
/** A Uint32Array of `len` values (or up to `max` values when `len` is null), each below `below`. */
function ids(v, where, field, len, max = Infinity, below = VOCAB_SIZE) {
  if (!(v instanceof Uint32Array)) fail(where, field, `must be an array of whole numbers (it is ${show(v)})`);
  if (len != null && v.length !== len) fail(where, field, `holds ${v.length} values; it must hold ${len}`);
  if (v.length > max) fail(where, field, `holds ${v.length} values; at most ${max}`);
  for (let i = 0; i < v.length; i++) if (v[i] >= below) fail(where, field, `holds ${v[i]} at [${i}]; values are below ${below}`);
  return v;
}

/** A checked v1 document (file or old store) as an item of the index's `add`: its text, its
 *  vectors as they were stored (f32), the rest as `meta` (what the page's list shows). */
export function toItem(d) {
  return {
    id: d.id, text: d.text,
    meta: { name: d.name, lang: d.lang, origin: d.origin, tokens: d.tokens, addedAt: d.addedAt },
    embedding: { windows: d.windows },
  };
}

/** "document 7 (“Title”)", for messages (the title only when it is text). */
export function docLabel(d, i) {
  const name = isObject(d) && typeof d.name === 'string' && d.name ? ` (“${d.name.length > 60 ? d.name.slice(0, 59) + '…' : d.name}”)` : '';
  return `document ${i + 1}${name}`;
}


function fmtSize(b) {
  return b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(1)} GiB` : b >= 1024 ** 2 ? `${(b / 1024 ** 2).toFixed(1)} MiB` : `${b} bytes`;
}
