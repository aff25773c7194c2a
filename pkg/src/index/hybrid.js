// The hybrid index (see HybridIndex in index.d.ts): documents' windows stored compactly
// (records.js) in IndexedDB or memory (storage.js); in page memory only the dense lane and the
// sparse postings (lanes.js). A search takes the best windows of each lane as candidates, reads
// their stored records in one transaction, scores them exactly (dense from the stored codes,
// lexical from the stored list, ColBERT MaxSim over the stored int8 rows) and ranks documents by
// their best window with the package's scoring rules (scoring.js).
import { DEFAULT_WEIGHTS, weightedScore, reciprocalRankFusion, lexicalScore, colbertScore, denseScore } from '../scoring.js';
import { decodeF16 } from './f16.js';
import { maxSimInt8 } from './kernels.js';
import { abortError } from '../errors.js';
import { Checker, indexError, isObject, show, UNIT_TOLERANCE } from './checks.js';
import { checkItem, encodeItem, decodeDocument, BYTE_PARTS } from './records.js';
import { LaneSet } from './lanes.js';
import { TopK } from './postings.js';
import { openMemory, deleteMemory, openIdb, deleteIdb, hasIndexedDB } from './storage.js';
import { writeIndexFile, readIndexFile, checkOptions, checkFingerprint, FORMAT_NAME, FORMAT_VERSION } from './format.js';
import { sameModel } from './fingerprint.js';

/** Windows reranked per lane by default (the candidate budget of the exact stage). */
export const DEFAULT_CANDIDATES = 64;
const DEFAULT_OPTIONS = { dense: 'int8', colbert: 'int8', poolFactor: 2 };
const MAX_NAME = 200;
const MAX_K = 10_000;
const MAX_CANDIDATES = 100_000;
/** Retries of a call whose storage another instance changed under it (after reloading). */
const RETRIES = 3;
const MODES = ['dense', 'sparse', 'colbert'];
const DATA_STORES = ['docs', 'texts', 'lanes', 'tokens'];

const throwIfAborted = signal => { if (signal?.aborted) throw abortError(); };
const checkSignal = signal => {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw indexError('input', 'options.signal must be an AbortSignal');
};
const now = () => performance.now();
/** Lets the page breathe during long preparation (and an abort land). */
const pause = () => new Promise(r => setTimeout(r, 0));

function storageKind(storage) {
  if (storage === undefined) return hasIndexedDB() ? 'indexeddb' : 'memory';
  if (storage !== 'indexeddb' && storage !== 'memory') throw indexError('input', `options.storage must be 'indexeddb' or 'memory' (it is ${show(storage)})`);
  if (storage === 'indexeddb' && !hasIndexedDB()) throw indexError('input', 'options.storage is \'indexeddb\' but this environment has no IndexedDB');
  return storage;
}
function checkName(name) {
  if (typeof name !== 'string' || !name.length || name.length > MAX_NAME) throw indexError('input', `an index name is text of 1 to ${MAX_NAME} characters (it is ${show(name)})`);
}

/** Opens (or creates) the index `name`; see index.d.ts. */
export async function openIndex(name, options = {}) {
  checkName(name);
  if (!isObject(options)) throw indexError('input', 'options must be an object');
  const storage = storageKind(options.storage);
  const c = new Checker('input', 'openIndex');
  const given = { ...DEFAULT_OPTIONS };
  for (const k of ['dense', 'colbert', 'poolFactor']) if (options[k] !== undefined) given[k] = options[k];
  checkOptions(c, given);
  const fingerprint = options.fingerprint === undefined ? null : checkFingerprint(c, options.fingerprint, 'options.fingerprint');
  const backend = storage === 'memory' ? openMemory(name) : await openIdb(name);
  const index = new HybridIndex(name, storage, backend);
  try {
    await index._open(given, fingerprint);
  } catch (e) {
    backend.close();
    // Refused before anything was stored: leave no empty database (or memory entry) behind.
    if (backend.fresh && index._empty) await Promise.resolve(storage === 'memory' ? deleteMemory(name) : deleteIdb(name)).catch(() => {});
    throw e;
  }
  return index;
}

/** Deletes the index `name` (its database, or its memory records); true when there was one to
 *  delete in memory, true for IndexedDB once deleted. Open instances stop working. */
export async function deleteIndex(name, { storage } = {}) {
  checkName(name);
  return storageKind(storage) === 'memory' ? deleteMemory(name) : deleteIdb(name);
}

class HybridIndex {
  #backend;
  #state = null; // LaneSet
  #rev = 0;
  #options = null; // { dense, colbert, poolFactor }
  #fingerprint = null; // { dim, probe }
  #queue = Promise.resolve();
  #closed = false;

  constructor(name, storage, backend) {
    this.name = name;
    this.storage = storage;
    this.#backend = backend;
  }

  // ── Opening and reloading ───────────────────────────────────────────────────────────────────
  async _open(given, fingerprint) {
    for (let attempt = 0; ; attempt++) {
      const loaded = await this.#load();
      if (loaded) {
        if (fingerprint && !sameModel(loaded.fingerprint, fingerprint)) {
          throw indexError('model', `the index "${this.name}" was built with another model (${loaded.fingerprint.dim}-dimensional vectors, a different probe vector) than the fingerprint given (${fingerprint.dim}-dimensional): its vectors cannot be compared; clear it or delete it and index again`);
        }
        return;
      }
      this._empty = this.#rev === 0;
      if (!fingerprint) throw indexError('input', `the index "${this.name}" does not exist yet: give options.fingerprint (modelFingerprint(model)) to create it`);
      const header = { format: FORMAT_NAME, version: FORMAT_VERSION, options: given, fingerprint, createdAt: Date.now() };
      try {
        await this.#backend.commit({ put: [['meta', 'header', header]] }, { expectRev: this.#rev, onCommit: () => this.#adopt(header, new LaneSet(fingerprint.dim), this.#rev + 1) });
        return;
      } catch (e) {
        if (!e.stale || attempt >= RETRIES) throw e;
      }
    }
  }

  #adopt(header, state, rev) {
    this.#options = header.options;
    this.#fingerprint = header.fingerprint;
    this.#state = state;
    this.#rev = rev;
  }

  /** Reads the whole index (one snapshot) into memory; false when it has no header yet. */
  async #load() {
    const loaded = await this.#backend.read(async r => {
      const [header, rev, count] = await Promise.all([r.get('meta', 'header'), r.get('meta', 'rev'), r.count('lanes')]);
      if (header === undefined) return { rev: rev ?? 0 };
      const c = new Checker('format', `the stored index "${this.name}"`);
      if (!isObject(header) || header.format !== FORMAT_NAME || header.version !== FORMAT_VERSION) c.fail('header', `is not a version ${FORMAT_VERSION} index header (${show(header)})`);
      const options = checkOptions(c, header.options);
      const fingerprint = checkFingerprint(c, header.fingerprint);
      const state = new LaneSet(fingerprint.dim, Math.max(1024, count));
      const docs = new Map();
      await r.scan('docs', (keys, values) => { for (let i = 0; i < keys.length; i++) docs.set(keys[i], values[i]); });
      let id = null, lanes = [];
      const flush = () => {
        if (id === null) return;
        const doc = docs.get(id);
        if (!doc || doc.windows?.length !== 4 * lanes.length) c.fail(`document “${id}”`, 'has window vectors that do not match its record');
        state.addDoc(doc, lanes);
        docs.delete(id);
      };
      await r.scan('lanes', (keys, values) => {
        for (let i = 0; i < keys.length; i++) {
          const [docId, k] = keys[i], l = values[i];
          if (docId !== id) { flush(); id = docId; lanes = []; }
          const T = options.dense === 'f16' ? Uint16Array : Int8Array;
          if (k !== lanes.length || !(l?.dense instanceof T) || l.dense.length !== fingerprint.dim || !(l.ids instanceof Uint32Array) || !(l.weights instanceof Float32Array) || l.ids.length !== l.weights.length) {
            c.fail(`document “${docId}” window ${k}`, 'is damaged');
          }
          lanes.push(l);
        }
      });
      flush();
      if (docs.size) c.fail(`document “${docs.keys().next().value}”`, 'has no window vectors');
      return { header: { options, fingerprint }, state, rev: rev ?? 0 };
    });
    if (!loaded.header) { this.#rev = loaded.rev; return null; }
    if (this.#fingerprint && !sameModel(loaded.header.fingerprint, this.#fingerprint)) {
      // Another instance replaced the index with one of another model: this one stops.
      this.#closed = true;
      throw indexError('model', `the index "${this.name}" now holds another model's vectors (changed elsewhere); open it again`);
    }
    this.#adopt(loaded.header, loaded.state, loaded.rev);
    return loaded.header;
  }

  async #reload() {
    const header = await this.#load();
    if (!header) {
      // The index was deleted and created again empty elsewhere: keep this one's header.
      this.#state = new LaneSet(this.#fingerprint.dim);
    }
  }

  #usable() {
    if (this.#closed) throw indexError('input', `the index "${this.name}" is closed`);
    this.#backend.check();
  }

  /** Runs a write after the ones before it; retried after a reload when another instance wrote. */
  #write(signal, attempt) {
    const run = async () => {
      for (let i = 0; ; i++) {
        this.#usable();
        throwIfAborted(signal);
        try {
          return await attempt();
        } catch (e) {
          if (!e.stale || i >= RETRIES) throw e;
          await this.#reload();
        }
      }
    };
    const p = this.#queue.then(run);
    this.#queue = p.catch(() => {});
    return p;
  }

  /** A commit that bumps this instance's revision and applies `apply` to memory when durable. */
  #commit(ops, signal, apply) {
    const rev = this.#rev;
    return this.#backend.commit(ops, {
      expectRev: rev,
      signal,
      onCommit: () => {
        this.#rev = rev + 1;
        apply();
        this.#state.maybeCompact();
      },
    });
  }

  /** Deletes of every record of document `id` as the index holds it now. */
  #deletes(id) {
    const entry = this.#state.docs.get(id);
    if (!entry) return [];
    const ops = [['docs', id], ['texts', id]];
    for (let k = 0; k < entry.wids.length; k++) ops.push(['lanes', [id, k]], ['tokens', [id, k]]);
    return ops;
  }

  #puts(rec) {
    const ops = [['docs', rec.id, rec.doc], ['texts', rec.id, rec.text]];
    rec.lanes.forEach((l, k) => ops.push(['lanes', [rec.id, k], l], ['tokens', [rec.id, k], rec.tokens[k]]));
    return ops;
  }

  // ── Writes ─────────────────────────────────────────────────────────────────────────────────
  add(items, { signal } = {}) {
    try {
      this.#usable();
      checkSignal(signal);
      if (!Array.isArray(items)) throw indexError('input', `add() takes an array of { id, text, meta, embedding } (it got ${show(items)})`);
    } catch (e) { return Promise.reject(e); }
    return this.#write(signal, async () => {
      const opts = { dim: this.#fingerprint.dim, ...this.#options };
      const recs = [], seen = new Map();
      let t = now();
      for (let i = 0; i < items.length; i++) {
        const item = checkItem(items[i], i, opts);
        if (seen.has(item.id)) throw indexError('input', `items[${i}] repeats the id “${item.id}” of items[${seen.get(item.id)}]`);
        seen.set(item.id, i);
        recs.push(encodeItem(item, opts));
        if (now() - t > 20) { await pause(); throwIfAborted(signal); t = now(); }
      }
      if (!recs.length) return { added: 0, replaced: 0 };
      const del = recs.flatMap(r => this.#deletes(r.id));
      const replaced = recs.filter(r => this.#state.docs.has(r.id)).length;
      await this.#commit({ del, put: recs.flatMap(r => this.#puts(r)) }, signal, () => {
        for (const r of recs) {
          this.#state.removeDoc(r.id);
          this.#state.addDoc(r.doc, r.lanes);
        }
      });
      return { added: recs.length - replaced, replaced };
    });
  }

  remove(ids, { signal } = {}) {
    try {
      this.#usable();
      checkSignal(signal);
      if (!Array.isArray(ids)) throw indexError('input', `remove() takes an array of ids (it got ${show(ids)})`);
      ids.forEach((id, i) => { if (typeof id !== 'string' || !id) throw indexError('input', `ids[${i}] is not a document id (it is ${show(id)})`); });
    } catch (e) { return Promise.reject(e); }
    return this.#write(signal, async () => {
      const present = [...new Set(ids)].filter(id => this.#state.docs.has(id));
      if (!present.length) return { removed: 0 };
      await this.#commit({ del: present.flatMap(id => this.#deletes(id)) }, signal, () => {
        for (const id of present) this.#state.removeDoc(id);
      });
      return { removed: present.length };
    });
  }

  clear({ signal } = {}) {
    try { this.#usable(); checkSignal(signal); } catch (e) { return Promise.reject(e); }
    return this.#write(signal, () => this.#commit({ clear: DATA_STORES }, signal, () => {
      this.#state = new LaneSet(this.#fingerprint.dim);
    }));
  }

  // ── Reads ──────────────────────────────────────────────────────────────────────────────────
  /** The stored records of document `id`, or null. */
  async #raw(r, id) {
    const doc = await r.get('docs', id);
    if (!doc) return null;
    const n = doc.windows.length / 4, ks = Array.from({ length: n }, (_, k) => k);
    const [text, lanes, tokens] = await Promise.all([
      r.get('texts', id),
      Promise.all(ks.map(k => r.get('lanes', [id, k]))),
      Promise.all(ks.map(k => r.get('tokens', [id, k]))),
    ]);
    return { doc, text, lanes, tokens };
  }

  async get(id) {
    this.#usable();
    if (typeof id !== 'string') throw indexError('input', `get() takes a document id (it got ${show(id)})`);
    const raw = await this.#backend.read(r => this.#raw(r, id));
    return raw && decodeDocument(raw.doc, raw.text, raw.lanes, raw.tokens, this.#fingerprint.dim);
  }

  /** One window of a document, as get() gives it, with the document's text and meta; or null. */
  async getWindow(id, index) {
    this.#usable();
    if (typeof id !== 'string') throw indexError('input', `getWindow() takes a document id (it got ${show(id)})`);
    if (!Number.isSafeInteger(index) || index < 0) throw indexError('input', `a window index is a whole number from 0 (it is ${show(index)})`);
    const raw = await this.#backend.read(async r => {
      const doc = await r.get('docs', id);
      if (!doc || 4 * index >= doc.windows.length) return null;
      const [text, lane, tokens] = await Promise.all([r.get('texts', id), r.get('lanes', [id, index]), r.get('tokens', [id, index])]);
      return { doc, text, lane, tokens };
    });
    if (!raw) return null;
    const one = { ...raw.doc, windows: raw.doc.windows.slice(4 * index, 4 * index + 4) };
    const d = decodeDocument(one, raw.text, [raw.lane], [raw.tokens], this.#fingerprint.dim);
    return { id: d.id, text: d.text, meta: d.meta, index, window: d.windows[0] };
  }

  /** Every document's id, meta and number of windows, in id order: one scan of the document
   *  records (no text, no vectors). */
  async list() {
    this.#usable();
    const out = [];
    await this.#backend.read(r => r.scan('docs', (keys, values) => {
      for (const d of values) out.push({ id: d.id, meta: d.meta ?? null, windows: d.windows.length / 4 });
    }));
    return out;
  }

  async *documents() {
    this.#usable();
    for (const id of [...this.#state.docs.keys()].sort()) {
      const d = await this.get(id);
      if (d) yield d;
    }
  }

  stats() {
    this.#usable();
    const s = this.#state;
    const bytes = { ...s.bytes, total: BYTE_PARTS.reduce((t, p) => t + s.bytes[p], 0) };
    return {
      name: this.name, storage: this.storage,
      documents: s.docs.size, windows: s.windows, tokens: s.tokens,
      bytes, memoryBytes: s.memoryBytes,
      options: { ...this.#options, dim: this.#fingerprint.dim },
      fingerprint: { dim: this.#fingerprint.dim, probe: this.#fingerprint.probe.slice() },
    };
  }

  // ── Export / import ────────────────────────────────────────────────────────────────────────
  async export() {
    this.#usable();
    return this.#backend.read(async r => {
      const header = await r.get('meta', 'header');
      const byId = new Map();
      const rec = id => { let x = byId.get(id); if (!x) { x = { lanes: [], tokens: [] }; byId.set(id, x); } return x; };
      await r.scan('docs', (ks, vs) => ks.forEach((k, i) => { rec(k).doc = vs[i]; }));
      await r.scan('texts', (ks, vs) => ks.forEach((k, i) => { rec(k).text = vs[i]; }));
      await r.scan('lanes', (ks, vs) => ks.forEach(([id, k], i) => { rec(id).lanes[k] = vs[i]; }));
      await r.scan('tokens', (ks, vs) => ks.forEach(([id, k], i) => { rec(id).tokens[k] = vs[i]; }));
      const docs = [...byId.values()].filter(d => d.doc).sort((a, b) => (a.doc.id < b.doc.id ? -1 : a.doc.id > b.doc.id ? 1 : 0));
      return writeIndexFile({ options: header.options, fingerprint: header.fingerprint, docs });
    });
  }

  import(blob, { mode = 'replace', signal } = {}) {
    try {
      this.#usable();
      checkSignal(signal);
      if (mode !== 'replace' && mode !== 'merge') throw indexError('input', `options.mode must be 'replace' or 'merge' (it is ${show(mode)})`);
    } catch (e) { return Promise.reject(e); }
    return this.#write(signal, async () => {
      const file = await readIndexFile(blob, { signal });
      throwIfAborted(signal);
      if (!sameModel(file.fingerprint, this.#fingerprint)) {
        throw indexError('model', `the file's vectors were made by another model (${file.fingerprint.dim}-dimensional, a different probe vector) than this index's (${this.#fingerprint.dim}-dimensional): they cannot be compared`);
      }
      if (mode === 'merge') {
        for (const k of ['dense', 'colbert', 'poolFactor']) {
          if (file.options[k] !== this.#options[k]) throw indexError('format', `the file's options.${k} is ${show(file.options[k])} and this index's ${show(this.#options[k])}: a merge needs the same options (import with mode 'replace' to take the file's)`);
        }
      }
      if (mode === 'replace') {
        const header = { format: FORMAT_NAME, version: FORMAT_VERSION, options: file.options, fingerprint: this.#fingerprint, createdAt: Date.now() };
        const state = new LaneSet(this.#fingerprint.dim, Math.max(1024, file.docs.reduce((n, d) => n + d.lanes.length, 0)));
        await this.#commit({ clear: DATA_STORES, put: [['meta', 'header', header], ...file.docs.flatMap(d => this.#puts(d))] }, signal, () => {
          for (const d of file.docs) state.addDoc(d.doc, d.lanes);
          this.#options = file.options;
          this.#state = state;
        });
        return { added: file.docs.length, replaced: 0 };
      }
      const replaced = file.docs.filter(d => this.#state.docs.has(d.id)).length;
      await this.#commit({ del: file.docs.flatMap(d => this.#deletes(d.id)), put: file.docs.flatMap(d => this.#puts(d)) }, signal, () => {
        for (const d of file.docs) {
          this.#state.removeDoc(d.id);
          this.#state.addDoc(d.doc, d.lanes);
        }
      });
      return { added: file.docs.length - replaced, replaced };
    });
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#backend.close();
  }

  // ── Search ─────────────────────────────────────────────────────────────────────────────────
  async search(query, options = {}) {
    this.#usable();
    if (!isObject(options)) throw indexError('input', 'search options must be an object');
    checkSignal(options.signal);
    const o = this.#searchOptions(options);
    const q = this.#checkQuery(query, o);
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(o.signal);
      const r = await this.#searchOnce(q, o);
      if (r) return r;
      if (attempt >= RETRIES) throw indexError('io', `the index "${this.name}" kept changing during the search; try again`);
    }
  }

  #searchOptions(options) {
    const c = new Checker('input', 'search options');
    const k = options.k === undefined ? 10 : c.int(options.k, 'k', 1, MAX_K);
    const candidates = options.candidates === undefined ? DEFAULT_CANDIDATES : c.int(options.candidates, 'candidates', 1, MAX_CANDIDATES);
    if (options.weights !== undefined && !isObject(options.weights)) c.fail('weights', `must be { dense, sparse, colbert } (it is ${show(options.weights)})`);
    const weights = { ...DEFAULT_WEIGHTS };
    for (const m of MODES) if (options.weights?.[m] !== undefined) weights[m] = c.num(options.weights[m], `weights.${m}`, 0);
    if (!(weights.dense + weights.sparse + weights.colbert > 0)) c.fail('weights', 'must give at least one of dense, sparse, colbert a weight above 0');
    if (options.reencode !== undefined && typeof options.reencode !== 'function') c.fail('reencode', 'must be a function (texts) => Promise<Embedding[]>');
    const colbertMode = weights.colbert === 0 ? 'off' : this.#options.colbert !== 'none' ? 'stored' : options.reencode ? 'reencoded' : 'skipped';
    return { k, candidates, weights, rrf: !!options.rrf, reencode: options.reencode, signal: options.signal, colbertMode };
  }

  /** The query's outputs the search needs, checked: { dense?, sparse? (+ Map), colbert? }. */
  #checkQuery(query, o) {
    const c = new Checker('input', 'the query');
    const dim = this.#fingerprint.dim;
    if (!isObject(query)) c.fail('', `must be an encode() result (it is ${show(query)})`);
    const q = {};
    if (query.dense !== undefined) {
      c.array(query.dense, Float32Array, 'dense', dim);
      c.finite(query.dense, 'dense');
      c.unitRows(1, () => query.dense.reduce((s, x) => s + x * x, 0), 'dense', UNIT_TOLERANCE);
      q.dense = query.dense;
    }
    if (query.sparse !== undefined) {
      if (!isObject(query.sparse)) c.fail('sparse', `must be { ids, weights } (it is ${show(query.sparse)})`);
      c.array(query.sparse.ids, Uint32Array, 'sparse.ids');
      c.array(query.sparse.weights, Float32Array, 'sparse.weights', query.sparse.ids.length);
      c.sparse(query.sparse.ids, query.sparse.weights, 'sparse');
      q.sparse = query.sparse;
      q.sparseMap = new Map();
      for (let i = 0; i < q.sparse.ids.length; i++) q.sparseMap.set(q.sparse.ids[i], q.sparse.weights[i]);
    }
    if (query.colbert !== undefined) {
      const x = query.colbert;
      if (!isObject(x)) c.fail('colbert', `must be { data, rows, dim } (it is ${show(x)})`);
      if (x.dim !== dim) c.fail('colbert.dim', `must be ${dim}, the index's width (it is ${show(x.dim)})`);
      c.int(x.rows, 'colbert.rows', 1, 1 << 20);
      c.array(x.data, Float32Array, 'colbert.data', x.rows * dim);
      c.finite(x.data, 'colbert.data');
      q.colbert = x;
    }
    const need = m => c.fail(m, `is missing, and weights.${m} is ${o.weights[m]}: encode the query with ${m}: true, or give ${m} weight 0`);
    if (o.weights.dense > 0 && !q.dense) need('dense');
    if (o.weights.sparse > 0 && !q.sparse) need('sparse');
    if ((o.colbertMode === 'stored' || o.colbertMode === 'reencoded') && !q.colbert) need('colbert');
    if (!q.dense && !q.sparse) c.fail('', 'has neither dense nor sparse outputs: the index finds its candidates with one of them');
    return q;
  }

  /** One search over the index as it is now; null when storage changed before the candidates
   *  were read (the caller tries again). */
  async #searchOnce(q, o) {
    const t0 = now(), s = this.#state, rev = this.#rev, dim = this.#fingerprint.dim;
    const timings = { dense: 0, sparse: 0, read: 0, colbert: 0, total: 0 };
    const empty = () => ({ hits: [], candidates: 0, colbert: o.colbertMode, timings: { ...timings, total: now() - t0 } });
    if (!s.windows) {
      // Nothing here; unless another instance has written since this one last read.
      const storedRev = (await this.#backend.read(r => r.get('meta', 'rev'))) ?? 0;
      if (storedRev === rev) return empty();
      if (storedRev !== this.#rev) await this.#reload();
      return null;
    }
    const C = Math.max(o.candidates, o.k);
    // Which lanes propose candidates: those weighted; a ColBERT-only search uses dense (else sparse).
    let useDense = o.weights.dense > 0, useSparse = o.weights.sparse > 0;
    if (!useDense && !useSparse) { if (q.dense) useDense = true; else useSparse = true; }
    const chosen = new Set();
    // Each lane proposes its best C live windows, and the best window of each of its best C
    // documents (by their best window in that lane): without the second, a long document's many
    // windows can crowd every other document out of the candidates (fewer than k documents
    // found, or a document scored on a lesser window).
    const propose = (top, byDoc) => {
      for (const wid of top.sorted()) chosen.add(wid);
      const docs = new TopK(C);
      for (const [wid, score] of byDoc.values()) docs.push(wid, score);
      for (const wid of docs.sorted()) chosen.add(wid);
    };
    const note = (byDoc, wid, score) => {
      const d = s.winDoc[wid], b = byDoc.get(d);
      if (!b) byDoc.set(d, [wid, score]);
      else if (score > b[1]) { b[0] = wid; b[1] = score; }
    };
    // Stage 1: the dense lane, every window.
    if (useDense) {
      const t = now();
      s.lane.scores(q.dense, s.denseOut);
      const top = new TopK(C), byDoc = new Map();
      for (let wid = 0, n = s.count; wid < n; wid++) {
        if (!s.alive[wid]) continue;
        top.push(wid, s.denseOut[wid]);
        note(byDoc, wid, s.denseOut[wid]);
      }
      propose(top, byDoc);
      timings.dense = now() - t;
    }
    // Stage 2: the sparse postings of the query's tokens; the best C live windows reached.
    if (useSparse) {
      const t = now();
      const n = s.postings.accumulate(q.sparse.ids, q.sparse.weights, s.acc, s.seen, s.touched);
      const top = new TopK(C), byDoc = new Map();
      for (let i = 0; i < n; i++) {
        const wid = s.touched[i];
        if (s.alive[wid]) {
          top.push(wid, s.acc[wid]);
          note(byDoc, wid, s.acc[wid]);
        }
        s.acc[wid] = 0;
        s.seen[wid] = 0;
      }
      propose(top, byDoc);
      timings.sparse = now() - t;
    }
    // The candidates, resolved now (window numbers may change once we await).
    const f16 = this.#options.dense === 'f16';
    const cands = [...chosen].map(wid => ({ id: s.winDoc[wid].id, k: s.winIndex[wid], dense: q.dense && !f16 ? s.denseDot(wid, q.dense) : null, sparse: null, colbert: null }));
    // Stage 3: their stored records, one read-only transaction.
    let t = now();
    const needTokens = o.colbertMode === 'stored', needText = o.colbertMode === 'reencoded';
    const ids = [...new Set(cands.map(c => c.id))];
    const read = await this.#backend.read(r => Promise.all([
      r.get('meta', 'rev'),
      Promise.all(ids.map(id => r.get('docs', id))),
      Promise.all(cands.map(c => (q.sparse || (f16 && q.dense) ? r.get('lanes', [c.id, c.k]) : null))),
      Promise.all(cands.map(c => (needTokens ? r.get('tokens', [c.id, c.k]) : null))),
      Promise.all(ids.map(id => (needText ? r.get('texts', id) : null))),
    ]));
    const [storedRev, docs, lanes, tokens, texts] = read;
    if ((storedRev ?? 0) !== rev) {
      if ((storedRev ?? 0) !== this.#rev) await this.#reload();
      return null;
    }
    timings.read = now() - t;
    throwIfAborted(o.signal);
    const docOf = new Map(ids.map((id, i) => [id, docs[i]]));
    cands.forEach((c, i) => {
      if (q.sparse) c.sparse = lexicalScore(q.sparseMap, lanes[i]);
      if (f16 && q.dense) c.dense = denseScore(q.dense, decodeF16(lanes[i].dense));
    });
    // ColBERT: MaxSim over the stored int8 rows, or over re-encoded window texts.
    t = now();
    if (o.colbertMode === 'stored') {
      cands.forEach((c, i) => { c.colbert = maxSimInt8(q.colbert.data, tokens[i].codes, tokens[i].scales, dim); });
    } else if (o.colbertMode === 'reencoded') {
      const textOf = new Map(ids.map((id, i) => [id, new TextDecoder().decode(texts[i])]));
      const windowText = c => { const w = docOf.get(c.id).windows; return textOf.get(c.id).slice(w[4 * c.k], w[4 * c.k + 1]); };
      const embs = await o.reencode(cands.map(windowText));
      throwIfAborted(o.signal);
      if (!Array.isArray(embs) || embs.length !== cands.length) throw indexError('input', `reencode() must return one embedding per text (${cands.length}); it returned ${show(embs)}`);
      embs.forEach((e, i) => {
        const x = e?.colbert;
        if (!isObject(x) || x.dim !== dim || !(x.data instanceof Float32Array) || x.data.length !== x.rows * dim) throw indexError('input', `reencode() result ${i} has no ColBERT rows of width ${dim}; encode with colbert: true`);
        cands[i].colbert = colbertScore(q.colbert.data, x.data, dim);
      });
    }
    timings.colbert = now() - t;
    // Hybrid per window; each document by its best window; then the weighted score or RRF.
    const scored = o.colbertMode === 'stored' || o.colbertMode === 'reencoded';
    const active = MODES.filter(m => o.weights[m] > 0 && (m !== 'colbert' || scored));
    const weights = Object.fromEntries(active.map(m => [m, o.weights[m]]));
    const best = new Map();
    for (const c of cands) {
      c.hybrid = weightedScore(c, weights);
      const b = best.get(c.id);
      if (!b || c.hybrid > b.hybrid || (c.hybrid === b.hybrid && c.k < b.k)) best.set(c.id, c);
    }
    let ranked = [...best.values()].map(c => ({ ...c, score: c.hybrid }));
    ranked.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1));
    if (o.rrf) {
      const byId = new Map(ranked.map(h => [h.id, h]));
      const rankings = active.map(m => [...ranked].sort((a, b) => b[m] - a[m]).map(h => h.id));
      ranked = reciprocalRankFusion(rankings).map(([id, score]) => ({ ...byId.get(id), score }));
    }
    const hits = ranked.slice(0, o.k).map(h => {
      const doc = docOf.get(h.id), w = doc.windows;
      return {
        id: h.id, meta: structuredClone(doc.meta), score: h.score, hybrid: h.hybrid,
        dense: h.dense, sparse: h.sparse, colbert: h.colbert,
        window: { index: h.k, start: w[4 * h.k], end: w[4 * h.k + 1], tokenStart: w[4 * h.k + 2], tokenEnd: w[4 * h.k + 3] },
      };
    });
    timings.total = now() - t0;
    return { hits, candidates: cands.length, colbert: o.colbertMode, timings };
  }
}

