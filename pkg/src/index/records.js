// The index's stored records and how a document becomes them (and back):
//   doc    id -> { id, meta, windows: Uint32Array [n, 4] (start, end, tokenStart, tokenEnd),
//                  bytes: { dense, sparse, colbert, tokens, text, docs } }
//   text   id -> Uint8Array (UTF-8)
//   lane   [id, w] -> { dense: Int8Array [dim] | Uint16Array [dim] (f16), scale (int8: value ≈
//                  code * scale; f16: 1), ids: Uint32Array, weights: Float32Array } — what open()
//                  reads back into memory (dense lane, postings) and a search's exact lexical score
//   tokens [id, w] -> { inputIds: Uint32Array [T], spans: Uint8Array | null (ColBERT rows' spans,
//                  varint-coded), codes?: Int8Array [R, dim], scales?: Float32Array [R],
//                  assign?: Uint16Array [T - 1] (pooled: the row of each token) }
// T = the window's tokens with <s> and </s>; its ColBERT rows are T - 1 (one per token after
// <s>), or ceil((T - 1) / poolFactor) pooled, or none.
import { quantizeRows, dequantizeRows } from './kernels.js';
import { encodeF16, decodeF16, finiteF16 } from './f16.js';
import { poolRows } from './pool.js';
import { Checker, isObject, label, show, MAX_ID, MAX_META_BYTES, MAX_TEXT, MAX_WINDOWS, MAX_WINDOW_TOKENS, UNIT_TOLERANCE, CODED_UNIT_TOLERANCE } from './checks.js';

const utf8 = new TextEncoder();

// ── Spans: per row (start, end) as zigzag varints of (start - previous start, end - start) ────
export function encodeSpans(spans) {
  const out = new Uint8Array(spans.length * 5 + 1);
  let o = 0, prev = 0;
  const put = v => { while (v >= 0x80) { out[o++] = (v % 0x80) | 0x80; v = Math.floor(v / 0x80); } out[o++] = v; };
  for (let r = 0; r < spans.length; r += 2) {
    const d = spans[r] - prev;
    put(d >= 0 ? 2 * d : -2 * d - 1);
    put(spans[r + 1] - spans[r]);
    prev = spans[r];
  }
  return out.slice(0, o);
}

/** Decodes `rows` spans; null when the bytes are not exactly that (crafted or damaged). */
export function decodeSpans(bytes, rows) {
  const out = new Uint32Array(2 * rows);
  let o = 0, prev = 0;
  const get = () => {
    let v = 0, mul = 1;
    for (let i = 0; i < 6; i++) {
      if (o >= bytes.length) return -1;
      const b = bytes[o++];
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 0x80;
    }
    return -1;
  };
  for (let r = 0; r < rows; r++) {
    const z = get(), len = get();
    if (z < 0 || len < 0) return null;
    const start = prev + (z % 2 ? -(z + 1) / 2 : z / 2);
    if (start < 0 || start + len > 0xffffffff) return null;
    out[2 * r] = start;
    out[2 * r + 1] = start + len;
    prev = start;
  }
  return o === bytes.length ? out : null;
}

// ── A document to add: checked (kind 'input'), then encoded ───────────────────────────────────
/** Checks item `i` of add() against the index's `dim` and `colbert` mode; returns it with `meta`
 *  as stored (a JSON copy) and `metaJson` (its JSON). */
export function checkItem(item, i, { dim, colbert }) {
  const c = new Checker('input', label(`items[${i}]`, isObject(item) ? item.id : undefined));
  if (!isObject(item)) c.fail('', `must be { id, text, meta, embedding } (it is ${show(item)})`);
  const id = c.str(item.id, 'id', MAX_ID, { empty: false });
  const text = c.str(item.text, 'text', MAX_TEXT);
  let metaJson;
  try { metaJson = JSON.stringify(item.meta ?? null); } catch (e) { c.fail('meta', `cannot be stored as JSON (${e.message})`); }
  if (metaJson === undefined) c.fail('meta', `cannot be stored as JSON (it is ${show(item.meta)})`);
  if (utf8.encode(metaJson).length > MAX_META_BYTES) c.fail('meta', `takes more than ${MAX_META_BYTES} bytes as JSON`);
  const e = item.embedding;
  if (!isObject(e) || !Array.isArray(e.windows)) c.fail('embedding', `must be an encode() result with windows (it is ${show(e)})`);
  if (!e.windows.length || e.windows.length > MAX_WINDOWS) c.fail('embedding.windows', `must hold 1 to ${MAX_WINDOWS} windows (it holds ${e.windows.length})`);
  e.windows.forEach((w, k) => checkWindow(c, w, `embedding.windows[${k}]`, { dim, colbert, textLength: text.length }));
  return { id, text, meta: JSON.parse(metaJson), metaJson, windows: e.windows };
}

function checkWindow(c, w, field, { dim, colbert, textLength }) {
  if (!isObject(w)) c.fail(field, `is not a window (it is ${show(w)})`);
  const f = k => `${field}.${k}`;
  const { tokenStart, tokenEnd } = c.window(w, textLength, field);
  const n = tokenEnd - tokenStart + 2;
  c.inputIds(w.inputIds, n, f('inputIds'));
  c.array(w.dense, Float32Array, f('dense'), dim);
  c.finite(w.dense, f('dense'));
  c.unitRows(1, () => norm2(w.dense, 0, dim), f('dense'), UNIT_TOLERANCE);
  if (!isObject(w.sparse)) c.fail(f('sparse'), `must be { ids, weights } (it is ${show(w.sparse)}); encode with sparse: true`);
  c.array(w.sparse.ids, Uint32Array, f('sparse.ids'));
  c.array(w.sparse.weights, Float32Array, f('sparse.weights'));
  if (w.sparse.ids.length > MAX_WINDOW_TOKENS) c.fail(f('sparse.ids'), `holds ${w.sparse.ids.length} ids; at most ${MAX_WINDOW_TOKENS}`);
  c.sparse(w.sparse.ids, w.sparse.weights, f('sparse'));
  const rows = n - 1;
  if (w.colbert === undefined) {
    if (colbert !== 'none') c.fail(f('colbert'), `is missing: this index keeps ColBERT rows (colbert '${colbert}'); encode with colbert: true`);
    if (w.colbertSpans !== undefined) c.spans(w.colbertSpans, rows, textLength, f('colbertSpans'));
    return;
  }
  if (!isObject(w.colbert)) c.fail(f('colbert'), `must be { data, rows, dim } (it is ${show(w.colbert)})`);
  if (w.colbert.dim !== dim) c.fail(f('colbert.dim'), `must be ${dim}, the index's width (it is ${show(w.colbert.dim)})`);
  if (w.colbert.rows !== rows) c.fail(f('colbert.rows'), `must be ${rows}, one row per token after <s> (it is ${show(w.colbert.rows)})`);
  c.array(w.colbert.data, Float32Array, f('colbert.data'), rows * dim);
  c.finite(w.colbert.data, f('colbert.data'));
  c.unitRows(rows, r => norm2(w.colbert.data, r * dim, dim), f('colbert.data'), UNIT_TOLERANCE);
  if (w.colbertSpans === undefined) c.fail(f('colbertSpans'), 'is missing: encode with colbertSpans: true (the index keeps where each token is, for highlights)');
  c.spans(w.colbertSpans, rows, textLength, f('colbertSpans'));
}

const norm2 = (v, o, dim) => {
  let s = 0;
  for (let k = 0; k < dim; k++) s += v[o + k] * v[o + k];
  return s;
};

/** A checked item -> its records { id, doc, text, lanes: [lane], tokens: [tokens] }; arrays are
 *  fresh copies (a record never shares a caller's buffer). */
export function encodeItem(item, { dim, dense, colbert, poolFactor }) {
  const text = utf8.encode(item.text);
  const lanes = [], tokens = [];
  const windows = new Uint32Array(item.windows.length * 4);
  const bytes = { dense: 0, sparse: 0, colbert: 0, tokens: 0, text: text.byteLength, docs: utf8.encode(item.metaJson).byteLength + utf8.encode(item.id).byteLength };
  item.windows.forEach((w, k) => {
    windows.set([w.start, w.end, w.tokenStart, w.tokenEnd], 4 * k);
    let lane;
    if (dense === 'f16') lane = { dense: encodeF16(w.dense), scale: 1 };
    else { const q = quantizeRows(w.dense, dim); lane = { dense: q.codes, scale: q.scales[0] }; }
    lane.ids = w.sparse.ids.slice();
    lane.weights = w.sparse.weights.slice();
    lanes.push(lane);
    const t = { inputIds: w.inputIds.slice(), spans: w.colbertSpans ? encodeSpans(w.colbertSpans) : null };
    if (colbert === 'int8') Object.assign(t, quantizeRows(w.colbert.data, dim));
    else if (colbert === 'pooled') {
      const p = poolRows(w.colbert.data, w.colbert.rows, dim, poolFactor);
      Object.assign(t, quantizeRows(p.data, dim), { assign: p.assign });
    }
    tokens.push(t);
    Object.assign(bytes, addBytes(bytes, recordBytes(lane, t)));
  });
  bytes.docs += windows.byteLength;
  return { id: item.id, doc: { id: item.id, meta: item.meta, windows, bytes }, text, lanes, tokens };
}

/** Bytes of a window's stored arrays, by part. */
export function recordBytes(lane, t) {
  return {
    dense: lane.dense.byteLength + (lane.dense instanceof Int8Array ? 4 : 0),
    sparse: lane.ids.byteLength + lane.weights.byteLength,
    colbert: (t.codes?.byteLength ?? 0) + (t.scales?.byteLength ?? 0) + (t.assign?.byteLength ?? 0),
    tokens: t.inputIds.byteLength + (t.spans?.byteLength ?? 0),
  };
}
const addBytes = (a, b) => Object.fromEntries(Object.keys(a).map(k => [k, a[k] + (b[k] ?? 0)]));
export const BYTE_PARTS = ['dense', 'sparse', 'colbert', 'tokens', 'text', 'docs'];

// ── Stored records back to vectors ────────────────────────────────────────────────────────────
/** A lane record's dense vector as f32 [dim]. */
export function denseOf(lane, dim) {
  return lane.dense instanceof Uint16Array ? decodeF16(lane.dense) : dequantizeRows(lane.dense, new Float32Array([lane.scale]), dim);
}

/** A document's records -> what get() returns (vectors dequantized, arrays copies). */
export function decodeDocument(doc, text, lanes, tokens, dim) {
  return {
    id: doc.id,
    text: new TextDecoder().decode(text),
    meta: structuredClone(doc.meta),
    windows: lanes.map((lane, k) => {
      const t = tokens[k], wi = doc.windows.subarray(4 * k, 4 * k + 4);
      const rows = t.inputIds.length - 1;
      const w = {
        start: wi[0], end: wi[1], tokenStart: wi[2], tokenEnd: wi[3],
        inputIds: t.inputIds.slice(),
        colbertSpans: t.spans ? decodeSpans(t.spans, rows) : undefined,
        dense: denseOf(lane, dim),
        sparse: { ids: lane.ids.slice(), weights: lane.weights.slice() },
      };
      if (t.codes) w.colbert = { data: dequantizeRows(t.codes, t.scales, dim), rows: t.scales.length, dim };
      if (t.assign) w.colbertAssign = t.assign.slice();
      return w;
    }),
  };
}

// ── Stored records, checked (an imported file: kind 'format'; storage read back) ─────────────
/** Checks one document's records against the index's options and `dim`; `c` names it. Returns
 *  the doc record with `bytes` recomputed (a file's own counts are not trusted). */
export function checkRecords(c, { id, meta, text, windows }, lanes, tokens, { dim, dense, colbert, poolFactor }) {
  c.str(id, 'id', MAX_ID, { empty: false });
  let metaJson;
  try { metaJson = JSON.stringify(meta ?? null); } catch { c.fail('meta', 'cannot be stored as JSON'); }
  if (utf8.encode(metaJson).length > MAX_META_BYTES) c.fail('meta', `takes more than ${MAX_META_BYTES} bytes as JSON`);
  c.array(text, Uint8Array, 'text');
  let str;
  try { str = new TextDecoder('utf-8', { fatal: true }).decode(text); } catch { c.fail('text', 'is not UTF-8'); }
  if (str.length > MAX_TEXT) c.fail('text', `is ${str.length} characters long; at most ${MAX_TEXT}`);
  const n = lanes.length;
  if (!n || n > MAX_WINDOWS) c.fail('windows', `must hold 1 to ${MAX_WINDOWS} windows (it holds ${n})`);
  c.array(windows, Uint32Array, 'windows', 4 * n);
  const bytes = { dense: 0, sparse: 0, colbert: 0, tokens: 0, text: text.byteLength, docs: utf8.encode(metaJson).byteLength + utf8.encode(id).byteLength + windows.byteLength };
  for (let k = 0; k < n; k++) {
    const f = x => `windows[${k}].${x}`, lane = lanes[k], t = tokens[k];
    const { tokenStart, tokenEnd } = c.window({ start: windows[4 * k], end: windows[4 * k + 1], tokenStart: windows[4 * k + 2], tokenEnd: windows[4 * k + 3] }, str.length, `windows[${k}]`);
    const T = tokenEnd - tokenStart + 2;
    if (T > MAX_WINDOW_TOKENS) c.fail(f('tokenEnd'), `makes a window of ${T} tokens; at most ${MAX_WINDOW_TOKENS}`);
    if (!isObject(lane) || !isObject(t)) c.fail(`windows[${k}]`, 'is missing its vectors');
    if (dense === 'f16') {
      c.array(lane.dense, Uint16Array, f('dense'), dim);
      for (let i = 0; i < dim; i++) if (!finiteF16(lane.dense[i])) c.fail(f('dense'), `holds a code at [${i}] that is not a finite f16`);
      if (lane.scale !== 1) c.fail(f('scale'), `must be 1 for f16 vectors (it is ${show(lane.scale)})`);
    } else {
      c.array(lane.dense, Int8Array, f('dense'), dim);
      c.num(lane.scale, f('scale'), 0);
    }
    c.unitRows(1, () => norm2(denseOf(lane, dim), 0, dim), f('dense'), CODED_UNIT_TOLERANCE);
    c.array(lane.ids, Uint32Array, f('sparse.ids'));
    if (lane.ids.length > MAX_WINDOW_TOKENS) c.fail(f('sparse.ids'), `holds ${lane.ids.length} ids; at most ${MAX_WINDOW_TOKENS}`);
    c.array(lane.weights, Float32Array, f('sparse.weights'));
    c.sparse(lane.ids, lane.weights, f('sparse'));
    c.inputIds(t.inputIds, T, f('inputIds'));
    const rows = T - 1;
    if (t.spans != null) {
      c.array(t.spans, Uint8Array, f('spans'));
      const spans = decodeSpans(t.spans, rows);
      if (!spans) c.fail(f('spans'), `is not ${rows} coded spans`);
      c.spans(spans, rows, str.length, f('spans'));
    } else if (colbert !== 'none') c.fail(f('spans'), 'is missing');
    if (colbert === 'none') {
      if (t.codes !== undefined || t.scales !== undefined || t.assign !== undefined) c.fail(f('colbert'), 'is present in an index without ColBERT rows');
    } else {
      const R = colbert === 'pooled' ? Math.ceil(rows / poolFactor) : rows;
      c.array(t.scales, Float32Array, f('colbertScales'), R);
      for (let r = 0; r < R; r++) c.num(t.scales[r], `${f('colbertScales')}[${r}]`, 0);
      c.array(t.codes, Int8Array, f('colbert'), R * dim);
      c.unitRows(R, r => { let s = 0; for (let i = r * dim; i < (r + 1) * dim; i++) s += t.codes[i] * t.codes[i]; return s * t.scales[r] * t.scales[r]; }, f('colbert'), CODED_UNIT_TOLERANCE);
      if (colbert === 'pooled') {
        c.array(t.assign, Uint16Array, f('colbertAssign'), rows);
        for (let i = 0; i < rows; i++) if (t.assign[i] >= R) c.fail(f('colbertAssign'), `holds ${t.assign[i]} at [${i}]; pooled rows are below ${R}`);
      } else if (t.assign !== undefined) c.fail(f('colbertAssign'), 'is present in an index without pooling');
    }
    Object.assign(bytes, addBytes(bytes, recordBytes(lane, t)));
  }
  return { id, meta: meta ?? null, windows, bytes };
}
