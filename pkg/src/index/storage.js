// Where an index's records live: IndexedDB (a database per index) or Maps in this JS realm (the
// same code path, for Node, servers and tests). Both give the index the same three things:
//   read(fn)        one read-only snapshot: fn(r) with r.get(store, key) and r.scan(store, onBatch)
//   commit(ops, …)  one atomic write of { clear: [store], del: [[store, key]], put: [[store, key,
//                   value]] }, refused when the index's revision (meta 'rev', +1 per commit) is not
//                   `expectRev` (another tab or instance wrote first: the error has `stale`), undone
//                   by an AbortSignal, a full storage (kind 'quota') or any failed request; `onCommit`
//                   runs when (and only when) the write is durable, before the promise settles
//   close()
// Records are structured-clonable values; keys are strings (document id) or [id, window].
import { abortError } from '../errors.js';
import { indexError } from './checks.js';

export const STORES = ['meta', 'docs', 'texts', 'lanes', 'tokens'];
/** IndexedDB database of index `name`. */
export const DB_PREFIX = 'bge-m3-index:';
const DB_VERSION = 1;
/** Records per getAll() while scanning a store. */
const SCAN_BATCH = 256;

function staleError() {
  const e = indexError('io', 'the index was changed by another instance or tab during this call');
  e.stale = true;
  return e;
}

/** A storage failure as an error with a kind: a full storage is 'quota'. */
export function storageError(e, action = 'write') {
  if (e?.kind || e?.name === 'AbortError') return e;
  if (e?.name === 'QuotaExceededError') {
    return indexError('quota', `the browser's storage for this site is full: the ${action} was not kept and the index is as it was (${e.message})`);
  }
  return indexError('io', `the index storage failed during a ${action}: ${e?.name ?? 'Error'}: ${e?.message ?? e}`);
}

// ── Memory ────────────────────────────────────────────────────────────────────────────────────
/** Memory indexes of this realm by name (openIndex again gets the same records). */
const memoryIndexes = new Map();

const memKey = k => (typeof k === 'string' ? k : JSON.stringify(k));
/** IndexedDB's order of the index's keys: strings by UTF-16 code units, [id, window] by id then window. */
function compareKeys(a, b) {
  if (Array.isArray(a)) return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
  return a < b ? -1 : a > b ? 1 : 0;
}

class MemoryBackend {
  constructor(name) {
    this.name = name;
    this.stores = Object.fromEntries(STORES.map(s => [s, new Map()])); // store -> memKey -> [key, value]
    this.deleted = false;
  }
  check() {
    if (this.deleted) throw indexError('input', `the index "${this.name}" was deleted`);
  }
  async read(fn) {
    this.check();
    const r = {
      get: async (store, key) => this.stores[store].get(memKey(key))?.[1],
      scan: async (store, onBatch) => {
        // In key order, as IndexedDB scans (a document's windows together, in order).
        const entries = [...this.stores[store].values()].sort((a, b) => compareKeys(a[0], b[0]));
        let keys = [], values = [];
        for (const [k, v] of entries) {
          keys.push(k); values.push(v);
          if (keys.length === SCAN_BATCH) { onBatch(keys, values); keys = []; values = []; }
        }
        if (keys.length) onBatch(keys, values);
      },
      count: async store => this.stores[store].size,
    };
    return fn(r);
  }
  async commit(ops, { expectRev, signal, onCommit }) {
    await null;
    this.check();
    if (signal?.aborted) throw abortError();
    if ((this.stores.meta.get('rev')?.[1] ?? 0) !== expectRev) throw staleError();
    for (const s of ops.clear ?? []) this.stores[s].clear();
    for (const [s, k] of ops.del ?? []) this.stores[s].delete(memKey(k));
    for (const [s, k, v] of ops.put ?? []) this.stores[s].set(memKey(k), [k, v]);
    this.stores.meta.set('rev', ['rev', expectRev + 1]);
    onCommit?.();
  }
  close() {}
}

/** The backend of memory index `name`; `fresh` when this call made it. */
export function openMemory(name) {
  let b = memoryIndexes.get(name);
  if (b) b.fresh = false;
  else { b = new MemoryBackend(name); b.fresh = true; memoryIndexes.set(name, b); }
  return b;
}

export function deleteMemory(name) {
  const b = memoryIndexes.get(name);
  if (b) b.deleted = true;
  return memoryIndexes.delete(name);
}

// ── IndexedDB ─────────────────────────────────────────────────────────────────────────────────
const request = req => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = e => { e.preventDefault?.(); reject(req.error); };
});

class IdbBackend {
  constructor(name, db) {
    this.name = name;
    this.db = db;
    this.closed = null;
    // Another connection deletes or upgrades the database: let it, and stop using it.
    db.onversionchange = () => { db.close(); this.closed = `the index "${name}" was deleted or upgraded elsewhere; open it again`; };
    db.onclose = () => { this.closed ??= `the browser closed the index "${name}" (its storage was cleared?); open it again`; };
  }
  check() {
    if (this.closed) throw indexError('input', this.closed);
  }
  async read(fn) {
    this.check();
    let tx;
    try { tx = this.db.transaction(STORES, 'readonly'); } catch (e) { throw storageError(e, 'read'); }
    const r = {
      get: (store, key) => request(tx.objectStore(store).get(key)),
      scan: async (store, onBatch) => {
        const os = tx.objectStore(store);
        let range = null;
        for (;;) {
          const [keys, values] = await Promise.all([request(os.getAllKeys(range, SCAN_BATCH)), request(os.getAll(range, SCAN_BATCH))]);
          if (!keys.length) return;
          onBatch(keys, values);
          if (keys.length < SCAN_BATCH) return;
          range = IDBKeyRange.lowerBound(keys[keys.length - 1], true);
        }
      },
      count: store => request(tx.objectStore(store).count()),
    };
    try {
      return await fn(r);
    } catch (e) {
      throw e instanceof DOMException ? storageError(e, 'read') : e;
    }
  }
  commit(ops, { expectRev, signal, onCommit }) {
    return new Promise((resolve, reject) => {
      this.check();
      if (signal?.aborted) { reject(abortError()); return; }
      let tx;
      try { tx = this.db.transaction(STORES, 'readwrite'); } catch (e) { reject(storageError(e)); return; }
      let stale = false, cancelled = false;
      const onAbort = () => {
        cancelled = true;
        try { tx.abort(); } catch { /* already committing: the write stands */ }
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      tx.oncomplete = () => {
        done();
        try { onCommit?.(); resolve(); } catch (e) { reject(e); }
      };
      tx.onabort = () => {
        done();
        reject(stale ? staleError() : tx.error ? storageError(tx.error) : cancelled ? abortError() : storageError(new Error('the write was cancelled')));
      };
      const meta = tx.objectStore('meta');
      meta.get('rev').onsuccess = e => {
        if ((e.target.result ?? 0) !== expectRev) { stale = true; tx.abort(); }
      };
      try {
        for (const s of ops.clear ?? []) tx.objectStore(s).clear();
        for (const [s, k] of ops.del ?? []) tx.objectStore(s).delete(k);
        for (const [s, k, v] of ops.put ?? []) tx.objectStore(s).put(v, k);
        meta.put(expectRev + 1, 'rev');
      } catch (e) {
        // A put that throws at once (a quota error, a value that cannot be cloned).
        try { tx.abort(); } catch { /* done already */ }
        done();
        reject(storageError(e));
      }
    });
  }
  close() {
    this.closed ??= `the index "${this.name}" is closed`;
    this.db.close();
  }
}

export function hasIndexedDB() {
  return typeof indexedDB !== 'undefined' && indexedDB !== null;
}

/** The backend of IndexedDB index `name`; `fresh` when this call made the database. */
export function openIdb(name) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_PREFIX + name, DB_VERSION);
    let fresh = false;
    req.onupgradeneeded = e => {
      fresh = e.oldVersion === 0;
      for (const s of STORES) if (!req.result.objectStoreNames.contains(s)) req.result.createObjectStore(s);
    };
    req.onsuccess = () => resolve(Object.assign(new IdbBackend(name, req.result), { fresh }));
    req.onerror = () => reject(storageError(req.error, 'open'));
    req.onblocked = () => reject(indexError('io', `the index "${name}" is open with another version elsewhere; close that tab`));
  });
}

export function deleteIdb(name) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase(DB_PREFIX + name);
    req.onsuccess = () => resolve(true);
    req.onerror = () => reject(storageError(req.error, 'delete'));
  });
}
