// The model on the thread it runs on (a worker by default): loading, windows, batching, abort.
import init, { M3 } from '../wasm/bge_m3_web.js';
import { resolveFiles, evict, throwIfAborted, DEFAULT_CACHE } from './files.js';
import { DEFAULT_WEIGHTS } from './scoring.js';

let wasmReady, wasm;
function initWasm() {
  wasmReady ??= init().then(exports => { wasm = exports; });
  return wasmReady;
}

/** Size of the wasm linear memory in bytes (it only grows: this is also its peak). */
export function wasmHeapBytes() {
  return wasm?.memory?.buffer.byteLength ?? 0;
}

/** Whether Blobs can be read slice by slice here (FileReaderSync: workers only). */
const canReadBlobs = typeof FileReaderSync !== 'undefined';

async function toBytesIfNeeded(files) {
  if (canReadBlobs) return files;
  // On the main thread a Blob cannot be read synchronously: the whole file is copied in.
  const out = {};
  for (const [k, v] of Object.entries(files)) out[k] = v instanceof Blob ? new Uint8Array(await v.arrayBuffer()) : v;
  return out;
}

/** A load failure caused by the file contents (not the device or the input). */
const isFileError = e => /truncated|bad model file|not a|missing tensor|shape|pickle|zip|safetensors|unexpected/i.test(e?.message ?? '');

/** A trap inside wasm (a panic): the instance is unusable afterwards. */
const isTrap = e => e instanceof WebAssembly.RuntimeError || /unreachable|RuntimeError/.test(String(e?.stack ?? e));

export class Engine {
  constructor(m3) {
    this.m3 = m3;
    this.broken = null;
  }

  static async load(source, { device = 'auto', limits = 'default', encoderFile, cache = DEFAULT_CACHE, onProgress, signal } = {}) {
    if (!['auto', 'webgpu', 'cpu'].includes(device)) throw new TypeError(`device must be "auto", "webgpu" or "cpu" (got ${JSON.stringify(device)})`);
    if (!['default', 'adapter'].includes(limits)) throw new TypeError(`limits must be "default" or "adapter" (got ${JSON.stringify(limits)})`);
    await initWasm();
    const build = async () => {
      const { files, cached, urls } = await resolveFiles(source, { encoderFile, cache, onProgress, signal });
      throwIfAborted(signal);
      const progress = (done, total) => onProgress?.({ file: 'model', phase: 'build', loaded: done, total });
      try {
        return new Engine(await M3.load(await toBytesIfNeeded(files), device, limits, progress));
      } catch (e) {
        e.cached = cached;
        e.urls = urls;
        throw e;
      }
    };
    try {
      return await build();
    } catch (e) {
      // A cached copy that no longer parses (changed on disk, partial write): fetch once more.
      if (e.cached?.length && isFileError(e)) {
        await evict(cache, Object.values(e.urls));
        return build();
      }
      throw e;
    }
  }

  get info() {
    const m = this.m3;
    return { backend: m.backend, adapter: m.adapter, hiddenSize: m.hiddenSize, maxTokens: m.maxTokens };
  }

  check() {
    if (this.broken) throw new Error(`the model crashed earlier (${this.broken}); load it again`);
  }

  /** Runs `f`, marking the engine broken if wasm trapped. */
  async guard(f) {
    this.check();
    try {
      return await f();
    } catch (e) {
      if (isTrap(e)) {
        this.broken = e.message;
        throw new Error(`the model crashed (${e.message}); load it again`);
      }
      throw e;
    }
  }

  tokenize(text) {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this.guard(async () => this.m3.tokenize(text));
  }

  idsToTokens(ids) {
    return this.guard(async () => tokenStrings(this.m3, ids));
  }

  encode(texts, options = {}) {
    return this.guard(() => encode(this.m3, texts, options));
  }

  async score(query, passages, { weights = DEFAULT_WEIGHTS, maxLength } = {}) {
    if (typeof query !== 'string') throw new TypeError('query must be a string');
    if (!Array.isArray(passages) || passages.some(p => typeof p !== 'string')) throw new TypeError('passages must be an array of strings');
    return this.guard(async () => this.m3.score(query, passages, [weights.dense, weights.sparse, weights.colbert], maxLength));
  }

  dispose() {
    this.m3?.free();
    this.m3 = null;
    this.broken = 'disposed';
  }
}

/** Vocabulary strings of token ids ("" for an id outside the vocabulary). */
const tokenStrings = (m3, ids) => Array.from(ids, id => m3.idToToken(id) ?? '');

function intOption(options, key, def, min, max) {
  const v = options[key] ?? def;
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`options.${key} must be an integer from ${min} to ${max} (got ${options[key]})`);
  return v;
}

/**
 * Cuts each text into windows of at most `maxLength` tokens, encodes all windows sorted by length
 * under a token budget, and puts the results back together per text.
 */
async function encode(m3, texts, options) {
  if (!Array.isArray(texts)) throw new TypeError('texts must be a string or an array of strings');
  texts.forEach((t, i) => { if (typeof t !== 'string') throw new TypeError(`texts[${i}] is not a string (${t === null ? 'null' : typeof t})`); });
  for (const k of ['dense', 'sparse', 'colbert', 'truncate', 'tokenStrings', 'colbertSpans']) {
    if (options[k] !== undefined && typeof options[k] !== 'boolean') throw new TypeError(`options.${k} must be a boolean`);
  }
  const { signal, onProgress } = options;
  const want = { dense: options.dense ?? true, sparse: options.sparse ?? true, colbert: options.colbert ?? true };
  const maxLength = intOption(options, 'maxLength', m3.maxTokens, 3, m3.maxTokens);
  const width = maxLength - 2; // content tokens per window
  const overlap = intOption(options, 'overlap', Math.min(256, Math.floor(width / 2)), 0, Math.floor(width / 2));
  const batchSize = intOption(options, 'batchSize', 16, 1, 4096);
  const maxBatchTokens = intOption(options, 'maxBatchTokens', 8192, 1, 1 << 24);
  throwIfAborted(signal);
  if (texts.length === 0) return [];

  // 1. Tokens and windows.
  const docs = texts.map(text => {
    const tok = m3.tokenize(text);
    const n = tok.ids.length - 2; // content tokens, between <s> and </s>
    const ranges = [];
    if (n <= width) ranges.push([0, n]);
    else if (options.truncate) ranges.push([0, width]);
    else for (let a = 0; ; a += width - overlap) { const b = Math.min(a + width, n); ranges.push([a, b]); if (b === n) break; }
    const windows = ranges.map(([a, b], k) => {
      const ids = new Uint32Array(b - a + 2);
      ids[0] = tok.ids[0];
      ids.set(tok.ids.subarray(1 + a, 1 + b), 1);
      ids[ids.length - 1] = tok.ids[tok.ids.length - 1];
      // Spans tile the text: a window reaches to where the next token starts.
      const start = k === 0 ? 0 : tok.starts[1 + a];
      const end = b < n ? (options.truncate ? tok.ends[b] : tok.starts[1 + b]) : text.length;
      return { start, end, tokenStart: a, tokenEnd: b, inputIds: ids };
    });
    return { text, tok, n, windows, truncated: n > width && !!options.truncate };
  });

  // 2. Encode every window, longest first, in chunks of one token budget: progress and abort
  //    happen between chunks.
  const all = docs.flatMap(d => d.windows);
  const order = all.map((_, i) => i).sort((x, y) => all[y].inputIds.length - all[x].inputIds.length);
  const totalTokens = all.reduce((s, w) => s + w.inputIds.length, 0);
  let done = 0, doneTokens = 0;
  for (let i = 0; i < order.length;) {
    const longest = all[order[i]].inputIds.length;
    const rows = Math.max(1, Math.min(batchSize, Math.floor(maxBatchTokens / longest)));
    const chunk = order.slice(i, i + rows);
    i += chunk.length;
    const out = await m3.encodeIds(chunk.map(j => all[j].inputIds), { ...want, batchSize, maxBatchTokens });
    chunk.forEach((j, k) => Object.assign(all[j], shape(out[k], m3.hiddenSize)));
    done += chunk.length;
    doneTokens += chunk.reduce((s, j) => s + all[j].inputIds.length, 0);
    onProgress?.({ windowsDone: done, windows: all.length, tokensDone: doneTokens, tokens: totalTokens });
    // Let queued messages (an abort) in before the next chunk.
    await new Promise(r => setTimeout(r, 0));
    throwIfAborted(signal);
  }

  // 3. Per text: window results, spans, and the document-level outputs.
  return docs.map(d => {
    for (const w of d.windows) {
      if (want.sparse && options.tokenStrings) w.sparse.tokens = tokenStrings(m3, w.sparse.ids);
      if (want.colbert && options.colbertSpans) w.colbertSpans = colbertSpans(d.tok, w);
    }
    return documentLevel(d, want, options);
  });
}

function shape(r, dim) {
  const w = {};
  if (r.dense) w.dense = r.dense;
  if (r.sparseIds) w.sparse = { ids: r.sparseIds, weights: r.sparseWeights };
  if (r.colbert) w.colbert = { data: r.colbert, rows: r.colbertRows, dim };
  return w;
}

/** UTF-16 span per ColBERT row of a window: its content tokens, then `</s>` (empty, at the end). */
function colbertSpans(tok, w) {
  const rows = w.inputIds.length - 1;
  const spans = new Uint32Array(2 * rows);
  for (let i = 0; i < rows - 1; i++) {
    spans[2 * i] = tok.starts[1 + w.tokenStart + i];
    spans[2 * i + 1] = tok.ends[1 + w.tokenStart + i];
  }
  spans[2 * rows - 2] = spans[2 * rows - 1] = rows > 1 ? spans[2 * rows - 3] : w.start;
  return spans;
}

function documentLevel(d, want, options) {
  const ws = d.windows;
  const inputIds = d.truncated ? ws[0].inputIds : d.tok.ids;
  if (ws.length === 1) {
    const w = ws[0];
    return { inputIds, ...pick(w, ['dense', 'sparse', 'colbert', 'colbertSpans']), windows: ws, truncated: d.truncated };
  }
  const doc = { inputIds, windows: ws, truncated: false };
  if (want.dense) {
    // Mean of the window vectors weighted by their token counts, L2-normalised.
    const dim = ws[0].dense.length;
    const v = new Float32Array(dim);
    for (const w of ws) { const n = w.tokenEnd - w.tokenStart; for (let i = 0; i < dim; i++) v[i] += n * w.dense[i]; }
    let norm = 0;
    for (let i = 0; i < dim; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < dim; i++) v[i] /= norm;
    doc.dense = v;
  }
  if (want.sparse) {
    // Per token id the largest weight over the windows.
    const m = new Map();
    for (const w of ws) w.sparse.ids.forEach((id, i) => { const x = w.sparse.weights[i]; if (!(m.get(id) >= x)) m.set(id, x); });
    doc.sparse = { ids: Uint32Array.from(m.keys()), weights: Float32Array.from(m.values()) };
    if (options.tokenStrings) {
      const names = new Map(ws.flatMap(w => w.sparse.tokens.map((t, i) => [w.sparse.ids[i], t])));
      doc.sparse.tokens = Array.from(doc.sparse.ids, id => names.get(id));
    }
  }
  if (want.colbert) {
    // Each content token once, from the window where it sits farther from the edge (overlaps
    // are split in the middle), then the last window's `</s>` vector.
    const dim = ws[0].colbert.dim;
    const rows = d.n + 1;
    const data = new Float32Array(rows * dim);
    const spans = options.colbertSpans ? new Uint32Array(2 * rows) : null;
    let row = 0;
    ws.forEach((w, k) => {
      const lo = k === 0 ? w.tokenStart : Math.floor((w.tokenStart + ws[k - 1].tokenEnd) / 2);
      const hi = k === ws.length - 1 ? w.tokenEnd : Math.floor((ws[k + 1].tokenStart + w.tokenEnd) / 2);
      const from = lo - w.tokenStart, count = hi - lo;
      data.set(w.colbert.data.subarray(from * dim, (from + count) * dim), row * dim);
      if (spans) spans.set(w.colbertSpans.subarray(2 * from, 2 * (from + count)), 2 * row);
      row += count;
    });
    const last = ws[ws.length - 1];
    data.set(last.colbert.data.subarray((last.colbert.rows - 1) * dim), row * dim);
    if (spans) spans.set(last.colbertSpans.subarray(2 * (last.colbert.rows - 1)), 2 * row);
    doc.colbert = { data, rows, dim };
    if (spans) doc.colbertSpans = spans;
  }
  return doc;
}

function pick(o, keys) {
  const r = {};
  for (const k of keys) if (o[k] !== undefined) r[k] = o[k];
  return r;
}
