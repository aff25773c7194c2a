// The index file (index.export() / index.import()): the stored records as they are, in one file.
//
// Layout: "BGEM3HIX" (8 bytes), u32 LE header length, header JSON (UTF-8), zero padding to a
// multiple of 8, then the typed arrays' bytes, each at an 8-aligned offset. In the header each
// typed array is { "$a": "i8" | "u8" | "u16" | "u32" | "f32", "o": byte offset in the data, "n":
// length }. Header: { format: FORMAT_NAME, version, exportedAt, options: { dense, colbert,
// poolFactor }, fingerprint: { dim, probe }, docs: [{ id, meta, text, windows, lanes: [{ dense,
// scale, ids, weights }], tokens: [{ inputIds, spans, codes?, scales?, assign? }] }] } — the
// records of records.js. Reading checks everything before anything is used (kind 'format',
// naming the document and field).
import { abortError } from '../errors.js';
import { Checker, indexError, isObject, label, show, MAX_DIM, UNIT_TOLERANCE } from './checks.js';
import { checkRecords } from './records.js';

export const FORMAT_NAME = 'bge-m3-web index';
export const FORMAT_VERSION = 1;
const MAGIC = 'BGEM3HIX';
/** Largest file read: it is read whole into memory (an ArrayBuffer). */
export const MAX_FILE_BYTES = 2 ** 31 - 1;
const MAX_HEADER_BYTES = 256 * 1024 ** 2;
const TYPES = { i8: Int8Array, u8: Uint8Array, u16: Uint16Array, u32: Uint32Array, f32: Float32Array };
const TYPE_NAMES = new Map(Object.entries(TYPES).map(([k, T]) => [T, k]));

/** { options, fingerprint, docs: [{ doc, text, lanes, tokens }] } -> Blob. */
export function writeIndexFile({ options, fingerprint, docs }) {
  const chunks = [];
  let offset = 0;
  const ref = v => {
    if (v == null) return null;
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    const r = { $a: TYPE_NAMES.get(v.constructor), o: offset, n: v.length };
    chunks.push(bytes);
    const pad = (8 - (bytes.byteLength % 8)) % 8;
    if (pad) chunks.push(new Uint8Array(pad));
    offset += bytes.byteLength + pad;
    return r;
  };
  const header = {
    format: FORMAT_NAME, version: FORMAT_VERSION, exportedAt: new Date().toISOString(),
    options: { dense: options.dense, colbert: options.colbert, poolFactor: options.poolFactor },
    fingerprint: { dim: fingerprint.dim, probe: ref(fingerprint.probe) },
    docs: docs.map(({ doc, text, lanes, tokens }) => ({
      id: doc.id, meta: doc.meta, text: ref(text), windows: ref(doc.windows),
      lanes: lanes.map(l => ({ dense: ref(l.dense), scale: l.scale, ids: ref(l.ids), weights: ref(l.weights) })),
      tokens: tokens.map(t => {
        const o = { inputIds: ref(t.inputIds), spans: ref(t.spans) };
        if (t.codes) { o.codes = ref(t.codes); o.scales = ref(t.scales); }
        if (t.assign) o.assign = ref(t.assign);
        return o;
      }),
    })),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const head = new Uint8Array(12);
  head.set(new TextEncoder().encode(MAGIC));
  new DataView(head.buffer).setUint32(8, json.byteLength, true);
  const pad = (8 - ((12 + json.byteLength) % 8)) % 8;
  return new Blob([head, json, new Uint8Array(pad), ...chunks], { type: 'application/octet-stream' });
}

const fail = msg => { throw indexError('format', msg); };

/** Reads and checks an index file: { options, fingerprint, docs: [{ id, doc, text, lanes,
 *  tokens }] } (copies of the arrays), or throws kind 'format' saying what is wrong and where. */
export async function readIndexFile(blob, { signal } = {}) {
  if (!(blob instanceof Blob)) throw indexError('input', `import() takes a Blob or File (it got ${show(blob)})`);
  if (blob.size > MAX_FILE_BYTES) fail(`the file is ${blob.size} bytes; index files of up to ${MAX_FILE_BYTES} bytes can be imported`);
  if (blob.size < 12) fail('this is not an index file (too short)');
  const buf = await blob.arrayBuffer();
  if (signal?.aborted) throw abortError();
  if (new TextDecoder().decode(new Uint8Array(buf, 0, 8)) !== MAGIC) fail('this is not an index file (its first bytes are not "BGEM3HIX")');
  const len = new DataView(buf).getUint32(8, true);
  if (len > MAX_HEADER_BYTES) fail(`the header is ${len} bytes; at most ${MAX_HEADER_BYTES}`);
  if (12 + len > buf.byteLength) fail('the file is truncated (its header runs past the end)');
  let header;
  try { header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(buf, 12, len))); } catch { fail('the file is damaged (its header is not JSON)'); }
  const top = new Checker('format', 'the index file');
  if (!isObject(header)) top.fail('header', 'is not an object');
  if (header.format !== FORMAT_NAME) top.fail('format', `must be "${FORMAT_NAME}" (it is ${show(header.format)})`);
  if (header.version !== FORMAT_VERSION) top.fail('version', `is ${show(header.version)}; this package reads version ${FORMAT_VERSION}`);
  const data = dataArrays(buf, 12 + len + ((8 - ((12 + len) % 8)) % 8));
  const options = checkOptions(top, header.options);
  const fingerprint = checkFingerprint(top, isObject(header.fingerprint) ? { ...header.fingerprint, probe: data.array(top, header.fingerprint.probe, 'fingerprint.probe') } : header.fingerprint, 'fingerprint');
  if (!Array.isArray(header.docs)) top.fail('docs', 'is not a list of documents');
  const ids = new Set(), docs = [];
  for (let i = 0; i < header.docs.length; i++) {
    const raw = header.docs[i];
    const c = new Checker('format', label(`document ${i + 1}`, isObject(raw) ? raw.id : undefined));
    if (!isObject(raw)) c.fail('', `is not a document (it is ${show(raw)})`);
    if (!Array.isArray(raw.lanes) || !Array.isArray(raw.tokens) || raw.lanes.length !== raw.tokens.length) c.fail('lanes', 'and tokens must be lists of the same length');
    const arr = (v, field, optional = false) => (optional && v == null ? null : data.array(c, v, field));
    const lanes = raw.lanes.map((l, k) => {
      if (!isObject(l)) c.fail(`lanes[${k}]`, `is not a window's vectors (it is ${show(l)})`);
      return { dense: arr(l.dense, `lanes[${k}].dense`), scale: l.scale, ids: arr(l.ids, `lanes[${k}].ids`), weights: arr(l.weights, `lanes[${k}].weights`) };
    });
    const tokens = raw.tokens.map((t, k) => {
      if (!isObject(t)) c.fail(`tokens[${k}]`, `is not a window's tokens (it is ${show(t)})`);
      const o = { inputIds: arr(t.inputIds, `tokens[${k}].inputIds`), spans: arr(t.spans, `tokens[${k}].spans`, true) };
      for (const f of ['codes', 'scales', 'assign']) if (t[f] !== undefined) o[f] = arr(t[f], `tokens[${k}].${f}`);
      return o;
    });
    const text = arr(raw.text, 'text'), windows = arr(raw.windows, 'windows');
    const doc = checkRecords(c, { id: raw.id, meta: raw.meta, text, windows }, lanes, tokens, { dim: fingerprint.dim, ...options });
    if (ids.has(doc.id)) c.fail('id', `repeats the id of an earlier document (${show(doc.id)})`);
    ids.add(doc.id);
    docs.push({ id: doc.id, doc, text, lanes, tokens });
    if (i % 64 === 63) {
      await new Promise(r => setTimeout(r, 0));
      if (signal?.aborted) throw abortError();
    }
  }
  return { options, fingerprint, docs };
}

/** The data section: `array(c, ref, field)` checks a reference against the data's bounds and
 *  returns a copy; all references together may not claim more bytes than the data holds. */
function dataArrays(buf, base) {
  const dataBytes = Math.max(0, buf.byteLength - base);
  let claimed = 0;
  return {
    array(c, ref, field) {
      if (!isObject(ref) || !(ref.$a in TYPES) || !Object.hasOwn(TYPES, ref.$a)) c.fail(field, `must be an array reference (it is ${show(ref)})`);
      const T = TYPES[ref.$a], { o, n } = ref;
      if (!Number.isSafeInteger(o) || o < 0 || o % 8 || !Number.isSafeInteger(n) || n < 0) c.fail(field, `has a bad array reference (${show(ref)})`);
      const bytes = n * T.BYTES_PER_ELEMENT;
      if (o + bytes > dataBytes) c.fail(field, `reaches past the end of the file (bytes ${o}–${o + bytes} of ${dataBytes}): the file is truncated or damaged`);
      claimed += bytes;
      if (claimed > dataBytes) c.fail(field, 'and the arrays before it claim more bytes than the file holds (overlapping arrays)');
      return new T(buf.slice(base + o, base + o + bytes));
    },
  };
}

// ── Options and fingerprints (also openIndex's, with kind 'input') ───────────────────────────
export const DENSE_KINDS = ['int8', 'f16'];
export const COLBERT_KINDS = ['int8', 'pooled', 'none'];
export const MAX_POOL_FACTOR = 16;

/** { dense, colbert, poolFactor }, checked by `c`. */
export function checkOptions(c, o) {
  if (!isObject(o)) c.fail('options', `must be an object (it is ${show(o)})`);
  if (!DENSE_KINDS.includes(o.dense)) c.fail('options.dense', `must be ${DENSE_KINDS.join(' or ')} (it is ${show(o.dense)})`);
  if (!COLBERT_KINDS.includes(o.colbert)) c.fail('options.colbert', `must be ${COLBERT_KINDS.join(', ')} (it is ${show(o.colbert)})`);
  c.int(o.poolFactor, 'options.poolFactor', 2, MAX_POOL_FACTOR);
  return { dense: o.dense, colbert: o.colbert, poolFactor: o.poolFactor };
}

/** A model fingerprint { dim, probe: Float32Array [dim], unit }, checked by `c`; a copy. */
export function checkFingerprint(c, fp, field = 'fingerprint') {
  if (!isObject(fp)) c.fail(field, `must be { dim, probe } (modelFingerprint(model)) (it is ${show(fp)})`);
  const dim = c.int(fp.dim, `${field}.dim`, 1, MAX_DIM);
  c.array(fp.probe, Float32Array, `${field}.probe`, dim);
  c.finite(fp.probe, `${field}.probe`);
  c.unitRows(1, () => fp.probe.reduce((s, x) => s + x * x, 0), `${field}.probe`, UNIT_TOLERANCE);
  return { dim, probe: fp.probe.slice() };
}
