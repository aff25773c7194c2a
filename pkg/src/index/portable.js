// Portable export: the windows of embedded documents as JSON lines a server engine loads as they
// are: Qdrant points (named vectors `dense`, `sparse`, `colbert`) or Milvus rows (`dense`,
// `sparse`), one line per window, and the collection JSON each engine needs (portableSchema).
// The shapes are the spec (docs/portable-export.md); `m3 encode --format` writes the same values.
import { Sha256 } from '../sha256.js';

export const PORTABLE_FORMATS = Object.freeze(['qdrant', 'milvus']);

/** Milvus: most UTF-8 bytes of a VARCHAR field (the `text` and `doc_id` fields' max_length). */
export const MILVUS_VARCHAR_MAX = 65535;

const inputError = message => Object.assign(new Error(message), { kind: 'input' });
const optionError = message => Object.assign(new TypeError(message), { kind: 'input' });
const utf8 = new TextEncoder();

/** The point / row id of window `window` of document `docId`: a UUID made of the SHA-256 of the
 *  UTF-8 bytes of the compact JSON `[docId, window]` (e.g. `["notes/a.txt",0]`, `[17,2]`): its
 *  first 16 bytes, with the version nibble set to 8 and the variant bits to 10 (RFC 9562's UUIDv8,
 *  "custom"). Lowercase, 8-4-4-4-12. The same document and window give the same id in every
 *  export, so a re-export upserts over the old points. */
export function pointId(docId, window) {
  checkDocId(docId);
  if (!Number.isSafeInteger(window) || window < 0) throw optionError(`window must be an integer >= 0 (got ${window})`);
  const hex = new Sha256().update(utf8.encode(JSON.stringify([docId, window]))).digestHex();
  const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** A float32 value as JSON text: 9 significant digits (always enough to give the same float32
 *  back), trailing zeros dropped, e.g. 0.0123456791, -1.5e-7, 0. */
export function f32Text(x) {
  if (x === 0) return '0';
  const s = Math.fround(x).toPrecision(9);
  const e = s.indexOf('e');
  return e < 0 ? trimZeros(s) : trimZeros(s.slice(0, e)) + s.slice(e);
}

/** "0.500000000" -> "0.5", "3.00000000" -> "3"; digits without a point stay. */
function trimZeros(m) {
  if (m.indexOf('.') < 0) return m;
  let end = m.length;
  while (m.charCodeAt(end - 1) === 48) end--; // '0'
  if (m.charCodeAt(end - 1) === 46) end--; // '.'
  return m.slice(0, end);
}

/** A document id the exports can carry: a non-empty string of well-formed UTF-16 (a Rust String,
 *  a Milvus VARCHAR) or a safe integer. */
function checkDocId(id) {
  if (typeof id === 'string') {
    if (id.length === 0) throw inputError('a document id is the empty string');
    if (!isWellFormed(id)) throw inputError(`document id ${JSON.stringify(id)} has a lone UTF-16 surrogate (not valid text in UTF-8)`);
  } else if (!Number.isSafeInteger(id)) {
    throw inputError(`a document id must be a non-empty string or a safe integer (got ${typeof id === 'number' ? id : typeof id})`);
  }
}

const isWellFormed = s => (typeof s.isWellFormed === 'function' ? s.isWellFormed() : !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s));

function checkOptions(options) {
  if (options === null || typeof options !== 'object') throw optionError('options must be an object');
  const { format, colbert = format === 'qdrant', dim } = options;
  if (!PORTABLE_FORMATS.includes(format)) throw optionError(`format must be one of ${PORTABLE_FORMATS.join(', ')} (got ${JSON.stringify(format)})`);
  if (typeof colbert !== 'boolean') throw optionError('colbert must be true or false');
  if (colbert && format === 'milvus') {
    throw optionError('colbert: Milvus rows carry no ColBERT vectors (no multi-vector field type in the common Milvus releases); export with colbert: false, or use format "qdrant"');
  }
  if (dim !== undefined && !(Number.isSafeInteger(dim) && dim > 0)) throw optionError(`dim must be an integer > 0 (got ${dim})`);
  return { format, colbert, dim };
}

/** Every window of `documents` as JSON lines (each string one line, ending in "\n"), in document
 *  order then window order. `documents`: an iterable or async iterable of `{ id, text, meta?,
 *  windows }` (windows as `model.encode()` gives them, or `index.documents()`). Nothing is
 *  yielded for a document before all of it is checked; a bad document rejects with kind 'input'
 *  naming it (lines already yielded for earlier documents stay valid). See index.d.ts. */
export async function* toJsonl(documents, options = {}) {
  const { format, colbert, dim: wantDim } = checkOptions(options);
  if (documents == null || (typeof documents[Symbol.asyncIterator] !== 'function' && typeof documents[Symbol.iterator] !== 'function')) {
    throw optionError('documents must be an iterable or async iterable of documents');
  }
  if (typeof documents === 'string') throw optionError('documents must be an iterable of documents, not a string');
  const seen = new Set(); // document ids so far: a repeat would overwrite points
  let dim = wantDim;
  for await (const doc of documents) {
    const lines = [];
    const name = checkDocument(doc, seen);
    doc.windows.forEach((w, k) => {
      const where = `document ${name} window ${k}`;
      const v = checkWindow(w, doc.text, where, dim, colbert, format);
      dim = v.dim;
      const id = pointId(doc.id, k);
      const payload = { window: k, start: w.start, end: w.end, token_start: w.tokenStart, token_end: w.tokenEnd, text: doc.text.slice(w.start, w.end), meta: doc.meta ?? null };
      if (format === 'qdrant') lines.push(qdrantLine(id, doc.id, payload, v));
      else lines.push(milvusLine(id, doc.id, payload, v, where));
    });
    yield* lines;
  }
}

/** Checks a document's own fields; returns its id as JSON (for messages). */
function checkDocument(doc, seen) {
  if (doc === null || typeof doc !== 'object') throw inputError(`a document must be an object (got ${doc === null ? 'null' : typeof doc})`);
  checkDocId(doc.id);
  const name = JSON.stringify(doc.id);
  const key = typeof doc.id === 'number' ? `n${doc.id}` : `s${doc.id}`;
  if (seen.has(key)) throw inputError(`document ${name} comes twice (its points would overwrite each other)`);
  seen.add(key);
  if (typeof doc.text !== 'string') throw inputError(`document ${name}: text must be a string`);
  if (!Array.isArray(doc.windows)) throw inputError(`document ${name}: windows must be an array`);
  if (doc.meta !== undefined) {
    let json;
    try { json = JSON.stringify(doc.meta); } catch (e) { throw inputError(`document ${name}: meta is not JSON (${e.message})`); }
    if (json === undefined) throw inputError(`document ${name}: meta is not JSON (a ${typeof doc.meta})`);
  }
  return name;
}

const isNumbers = a => a instanceof Float32Array || a instanceof Float64Array || Array.isArray(a);

/** Checks one window; returns its vectors as JSON text pieces: { dim, dense, sparseIds,
 *  sparseValues, colbert } (colbert: null when not exported). */
function checkWindow(w, text, where, dim, colbert, format) {
  if (w === null || typeof w !== 'object') throw inputError(`${where}: not an object`);
  const { start, end, tokenStart, tokenEnd } = w;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > text.length) {
    throw inputError(`${where}: span [${start}, ${end}) is not inside the text (${text.length} UTF-16 units)`);
  }
  if (!Number.isSafeInteger(tokenStart) || !Number.isSafeInteger(tokenEnd) || tokenStart < 0 || tokenStart > tokenEnd) {
    throw inputError(`${where}: token span [${tokenStart}, ${tokenEnd}) is not a span`);
  }
  // dense: [dim]
  if (!isNumbers(w.dense) || w.dense.length === 0) throw inputError(`${where}: dense vector missing (encode with dense: true)`);
  if (dim !== undefined && w.dense.length !== dim) throw inputError(`${where}: dense has ${w.dense.length} values, not ${dim}`);
  dim = w.dense.length;
  const dense = numbers(w.dense, `${where}: dense`);
  // sparse: ids [n] (distinct, uint32), weights [n]
  const s = w.sparse;
  if (s === null || typeof s !== 'object' || !(s.ids instanceof Uint32Array || Array.isArray(s.ids)) || !isNumbers(s.weights)) {
    throw inputError(`${where}: sparse vector missing (encode with sparse: true)`);
  }
  if (s.ids.length !== s.weights.length) throw inputError(`${where}: sparse has ${s.ids.length} ids and ${s.weights.length} weights`);
  const ids = new Set();
  const keep = []; // positions written
  for (let i = 0; i < s.ids.length; i++) {
    const id = s.ids[i], wt = s.weights[i];
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw inputError(`${where}: sparse id ${id} is not a 32-bit unsigned integer`);
    if (ids.has(id)) throw inputError(`${where}: sparse id ${id} comes twice`);
    ids.add(id);
    if (!Number.isFinite(wt)) throw inputError(`${where}: sparse weight of id ${id} is ${wt}`);
    if (format === 'milvus') {
      // Milvus refuses negative weights and drops zeros (which add nothing to a score).
      if (wt < 0) throw inputError(`${where}: sparse weight of id ${id} is negative (${wt}); Milvus takes weights >= 0 only`);
      if (Math.fround(wt) === 0) continue;
    }
    keep.push(i);
  }
  if (format === 'milvus' && keep.length === 0) {
    throw inputError(`${where}: the sparse vector has no weight above 0, and Milvus cannot store such a row (its SPARSE_FLOAT_VECTOR needs one); leave this window out of a Milvus export, or use format "qdrant"`);
  }
  const sparseIds = keep.map(i => String(s.ids[i]));
  const sparseValues = keep.map(i => f32Text(s.weights[i]));
  // colbert: [rows, dim], exported as rows of dim values
  let rowsText = null;
  if (colbert && w.colbert != null) {
    const c = w.colbert;
    if (!isNumbers(c.data) || !Number.isSafeInteger(c.rows) || c.dim !== dim || c.data.length !== c.rows * dim) {
      throw inputError(`${where}: colbert must be { data, rows, dim } with dim ${dim} and rows x dim values`);
    }
    if (c.rows === 0) throw inputError(`${where}: colbert has no rows (a window has at least its </s> row)`);
    const row = r => (Array.isArray(c.data) ? c.data.slice(r * dim, (r + 1) * dim) : c.data.subarray(r * dim, (r + 1) * dim));
    rowsText = [];
    for (let r = 0; r < c.rows; r++) rowsText.push(`[${numbers(row(r), `${where}: colbert row ${r}`).join(',')}]`);
  }
  return { dim, dense: dense.join(','), sparseIds, sparseValues, colbert: rowsText };
}

/** Finite values of `a` as float32 JSON text. */
function numbers(a, what) {
  const out = new Array(a.length);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw inputError(`${what}[${i}] is ${a[i]}`);
    out[i] = f32Text(a[i]);
  }
  return out;
}

/** Qdrant: {"id", "vector": {"dense", "sparse": {"indices", "values"}, "colbert"?}, "payload"}. */
function qdrantLine(id, docId, p, v) {
  const colbert = v.colbert ? `,"colbert":[${v.colbert.join(',')}]` : '';
  const payload = JSON.stringify({ doc_id: docId, ...p });
  return `{"id":"${id}","vector":{"dense":[${v.dense}],"sparse":{"indices":[${v.sparseIds.join(',')}],"values":[${v.sparseValues.join(',')}]}${colbert}},"payload":${payload}}\n`;
}

/** Milvus: {"id", "dense", "sparse": {"<token id>": weight}, "doc_id" (a string), the payload's
 *  scalar fields, "meta"}. */
function milvusLine(id, docId, p, v, where) {
  const docIdText = String(docId);
  if (utf8.encode(docIdText).length > MILVUS_VARCHAR_MAX) throw inputError(`${where}: the document id is over ${MILVUS_VARCHAR_MAX} UTF-8 bytes (Milvus VARCHAR)`);
  const bytes = utf8.encode(p.text).length;
  if (bytes > MILVUS_VARCHAR_MAX) {
    throw inputError(`${where}: its text is ${bytes} UTF-8 bytes, over Milvus' VARCHAR limit of ${MILVUS_VARCHAR_MAX}; encode with a smaller maxLength, or use format "qdrant"`);
  }
  const sparse = v.sparseIds.map((id, i) => `"${id}":${v.sparseValues[i]}`).join(',');
  const rest = JSON.stringify({ doc_id: docIdText, ...p }).slice(1);
  return `{"id":"${id}","dense":[${v.dense}],"sparse":{${sparse}},${rest}\n`;
}

/** The collection JSON for `dim`-dimensional vectors (see index.d.ts): Qdrant's create-collection
 *  body (PUT /collections/{name}), Milvus' REST v2 create body (POST
 *  /v2/vectordb/collections/create). */
export function portableSchema(format, dim, options = {}) {
  if (!PORTABLE_FORMATS.includes(format)) throw optionError(`format must be one of ${PORTABLE_FORMATS.join(', ')} (got ${JSON.stringify(format)})`);
  if (!(Number.isSafeInteger(dim) && dim > 0)) throw optionError(`dim must be an integer > 0 (got ${dim})`);
  if (options === null || typeof options !== 'object') throw optionError('options must be an object');
  const { colbert = format === 'qdrant', exact = false, name = 'bge_m3' } = options;
  if (typeof colbert !== 'boolean' || typeof exact !== 'boolean') throw optionError('colbert and exact must be true or false');
  if (colbert && format === 'milvus') throw optionError('colbert: Milvus rows carry no ColBERT vectors; use colbert: false');
  if (typeof name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,254}$/.test(name)) throw optionError(`name must be letters, digits and _ , not starting with a digit (got ${JSON.stringify(name)})`);
  if (format === 'qdrant') {
    // Dot: the vectors are the index's own (unit length, or nearly so after int8), scored as the
    // package scores them. `m: 0`: no HNSW graph, every search exact (a full scan).
    const dense = { size: dim, distance: 'Dot', ...(exact ? { hnsw_config: { m: 0 } } : {}) };
    const vectors = { dense };
    if (colbert) vectors.colbert = { size: dim, distance: 'Dot', multivector_config: { comparator: 'max_sim' }, hnsw_config: { m: 0 } };
    return { vectors, sparse_vectors: { sparse: {} } };
  }
  const varchar = (fieldName, max) => ({ fieldName, dataType: 'VarChar', elementTypeParams: { max_length: max } });
  const int64 = fieldName => ({ fieldName, dataType: 'Int64' });
  return {
    collectionName: name,
    schema: {
      autoId: false,
      enableDynamicField: false,
      fields: [
        { ...varchar('id', 36), isPrimary: true },
        { fieldName: 'dense', dataType: 'FloatVector', elementTypeParams: { dim } },
        { fieldName: 'sparse', dataType: 'SparseFloatVector' },
        varchar('doc_id', MILVUS_VARCHAR_MAX),
        int64('window'), int64('start'), int64('end'), int64('token_start'), int64('token_end'),
        varchar('text', MILVUS_VARCHAR_MAX),
        { fieldName: 'meta', dataType: 'JSON', nullable: true },
      ],
    },
    indexParams: [
      { fieldName: 'dense', indexName: 'dense', metricType: 'IP', indexType: exact ? 'FLAT' : 'AUTOINDEX' },
      { fieldName: 'sparse', indexName: 'sparse', metricType: 'IP', indexType: 'SPARSE_INVERTED_INDEX' },
    ],
  };
}
