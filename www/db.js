// The index, kept in this browser's IndexedDB: one record per document (text + the vectors of its
// windows, as typed arrays) and a "fingerprint" of the model that made the vectors. The file
// format and the checks on records are index-file.js's.
//
// Every change of the index either happens whole or not at all:
// - each record belongs to a generation (`gen`, part of its key [gen, id]); meta 'live' lists the
//   committed generations, and only their records are the index;
// - an indexing run writes its records under a new generation, a save group at a time, and
//   commits by adding that generation to 'live' in one transaction (a re-index replaces 'live'
//   with it), which also deletes the records it supersedes and sets the fingerprint;
// - an import writes its records and commits in one transaction;
// - records of a generation that never became live (a run that failed, a closed tab) are left
//   out on load and deleted (`dropStale`).
// A failed write (the storage quota, a closed tab) thus leaves the index as it was.

const DB_NAME = 'bge-m3-demo';
const DB_VERSION = 2; // 1: store 'docs' keyed by id, no generations
/** Held (Web Locks) while a run writes, so that another tab's clean-up does not take its records
 *  for stale ones. */
const LOCK = 'bge-m3-demo:index-writes';

let dbPromise;
function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = e => upgrade(req.result, req.transaction, e.oldVersion);
    req.onsuccess = () => {
      const d = req.result;
      d.onversionchange = () => d.close(); // a newer page wants to upgrade: let it
      resolve(d);
    };
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('the index database is open in another tab with an older version; close it and reload'));
  });
  dbPromise.catch(() => { dbPromise = null; });
  return dbPromise;
}

function upgrade(d, tx, oldVersion) {
  if (!d.objectStoreNames.contains('meta')) d.createObjectStore('meta');
  const records = d.createObjectStore('records', { keyPath: ['gen', 'id'] });
  const meta = tx.objectStore('meta');
  meta.put(oldVersion >= 1 ? [0] : [], 'live');
  meta.put(1, 'nextGen');
  if (!d.objectStoreNames.contains('docs')) return;
  // Version 1 kept one store of documents, all live: they become generation 0.
  tx.objectStore('docs').openCursor().onsuccess = e => {
    const c = e.target.result;
    if (!c) { d.deleteObjectStore('docs'); return; }
    try { records.put({ ...c.value, gen: 0 }); } catch { /* no usable id: it was unreadable anyway */ }
    c.continue();
  };
}

/** A transaction and a promise of its end (rejecting with the error that aborted it: the quota, a
 *  failed request). Taken at once, so that no abort goes unseen. */
async function begin(stores, mode = 'readonly') {
  const tx = (await db()).transaction(stores, mode);
  const finished = new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new DOMException('the write was cancelled', 'AbortError'));
  });
  finished.catch(() => {}); // awaited by the caller unless it throws first
  return { tx, finished };
}
function result(req) {
  return new Promise((resolve, reject) => { req.onsuccess = () => resolve(req.result); req.onerror = () => reject(req.error); });
}
/** All keys [gen, id] of generation `gen` (ids are strings). */
const genRange = gen => IDBKeyRange.bound([gen], [gen, []]);
const gensOf = live => (Array.isArray(live) ? live.filter(Number.isSafeInteger) : []);

/** Runs `fn` holding this origin's write lock (in every tab); without Web Locks, just runs it. */
function withLock(fn) {
  return navigator.locks ? navigator.locks.request(LOCK, fn) : fn();
}

// ── Reading ───────────────────────────────────────────────────────────────────────────────────
/** The index as stored: { records: [{ key, value }] of the live generations (a later generation's
 *  record of an id wins), fingerprint (unchecked), stale: how many records are not live }. */
export async function loadIndex() {
  const { tx, finished } = await begin(['records', 'meta']);
  const records = tx.objectStore('records'), meta = tx.objectStore('meta');
  const [live, fingerprint, keys] = await Promise.all([result(meta.get('live')), result(meta.get('fingerprint')), result(records.getAllKeys())]);
  const gens = gensOf(live).sort((a, b) => a - b);
  const values = await Promise.all(gens.map(g => result(records.getAll(genRange(g)))));
  await finished;
  const byId = new Map();
  gens.forEach((g, i) => values[i].forEach(value => byId.set(String(value.id), { key: [g, value.id], value })));
  const shown = [...byId.values()];
  return { records: shown.map(({ key, value }) => ({ key, value })), fingerprint, stale: keys.length - shown.length };
}

/** Deletes the records that are not part of the index (unless a run holds the write lock: it may
 *  be another tab's, still writing). Returns how many were deleted. */
export async function dropStale() {
  const run = async lock => {
    if (lock === null) return 0;
    const { tx, finished } = await begin(['records', 'meta'], 'readwrite');
    const records = tx.objectStore('records');
    const [live, keys] = await Promise.all([result(tx.objectStore('meta').get('live')), result(records.getAllKeys())]);
    const gens = gensOf(live), latest = new Map();
    for (const [g, id] of keys) if (gens.includes(g) && !(latest.get(id) > g)) latest.set(id, g);
    let n = 0;
    for (const key of keys) if (latest.get(key[1]) !== key[0]) { records.delete(key); n++; }
    await finished;
    return n;
  };
  return navigator.locks ? navigator.locks.request(LOCK, { ifAvailable: true }, run) : run(undefined);
}

// ── Writing ───────────────────────────────────────────────────────────────────────────────────
/** A new generation number (never used before, in any tab). */
async function newGeneration(tx) {
  const meta = tx.objectStore('meta');
  const [next, last] = await Promise.all([result(meta.get('nextGen')), result(tx.objectStore('records').openKeyCursor(null, 'prev'))]);
  const gen = Math.max(Number.isSafeInteger(next) ? next : 1, (last ? last.key[0] : 0) + 1);
  meta.put(gen + 1, 'nextGen');
  return gen;
}

/** Makes generation `gen` (holding the documents `ids`) part of the index, inside `tx`: added to
 *  'live', or (`replaceAll`) alone in it; the records it supersedes are deleted; `fingerprint` is
 *  stored when the index had none or is replaced. */
async function commitGeneration(tx, gen, ids, { fingerprint, replaceAll = false }) {
  const records = tx.objectStore('records'), meta = tx.objectStore('meta');
  const [live, stored] = await Promise.all([result(meta.get('live')), result(meta.get('fingerprint'))]);
  const gens = gensOf(live).filter(g => g !== gen);
  for (const g of gens) {
    if (replaceAll) records.delete(genRange(g));
    else for (const id of ids) records.delete([g, id]);
  }
  meta.put(replaceAll ? [gen] : [...gens, gen], 'live');
  if (fingerprint && (replaceAll || !stored)) meta.put(fingerprint, 'fingerprint');
}

/** Stores `docs` (checked records) and makes them part of the index in one transaction: all of
 *  them or, if anything fails (the quota), none. Returns the records as stored (with `gen`). */
export function importDocs(docs, fingerprint) {
  return withLock(async () => {
    const { tx, finished } = await begin(['records', 'meta'], 'readwrite');
    const gen = await newGeneration(tx);
    const stored = docs.map(d => ({ ...d, gen }));
    const records = tx.objectStore('records');
    for (const r of stored) records.put(r);
    await commitGeneration(tx, gen, docs.map(d => d.id), { fingerprint });
    await finished;
    return stored;
  });
}

/** An indexing run: `put(docs)` writes a save group under the run's own generation (not part of
 *  the index yet), `commit({ fingerprint, replaceAll })` makes all of them part of it in one
 *  transaction, `discard()` deletes them. After either, the run is over. Holds the write lock
 *  from start to end. */
export async function beginRun() {
  let release;
  const ended = new Promise(r => { release = r; });
  const locked = new Promise(acquired => (navigator.locks ? navigator.locks.request(LOCK, () => { acquired(); return ended; }) : acquired()));
  await locked;
  let gen;
  try {
    const { tx, finished } = await begin(['records', 'meta'], 'readwrite');
    gen = await newGeneration(tx);
    await finished;
  } catch (e) { release(); throw e; }
  const ids = [];
  return {
    gen,
    async put(docs) {
      const stored = docs.map(d => ({ ...d, gen }));
      const { tx, finished } = await begin('records', 'readwrite');
      for (const r of stored) tx.objectStore('records').put(r);
      await finished;
      ids.push(...docs.map(d => d.id));
      return stored;
    },
    async commit(opts) {
      try {
        const { tx, finished } = await begin(['records', 'meta'], 'readwrite');
        // Everything written must still be there (a clear may have run meanwhile).
        const n = await result(tx.objectStore('records').count(genRange(gen)));
        if (n !== ids.length) { tx.abort(); throw new Error('the index was cleared or changed while this run was writing'); }
        await commitGeneration(tx, gen, ids, opts);
        await finished;
      } finally { release(); }
    },
    async discard() {
      try {
        const { tx, finished } = await begin('records', 'readwrite');
        tx.objectStore('records').delete(genRange(gen));
        await finished;
      } finally { release(); }
    },
  };
}

/** Deletes records by key ([gen, id]); when no record of the index is left, the fingerprint too. */
export async function deleteRecords(keys) {
  const { tx, finished } = await begin(['records', 'meta'], 'readwrite');
  const records = tx.objectStore('records'), meta = tx.objectStore('meta');
  for (const k of keys) records.delete(k);
  const live = gensOf(await result(meta.get('live')));
  const left = await Promise.all(live.map(g => result(records.count(genRange(g)))));
  if (!left.some(n => n > 0)) { meta.put([], 'live'); meta.delete('fingerprint'); }
  await finished;
}

/** Empties the index (generation numbers keep counting, so a late write of an old run stays stale). */
export async function clearAll() {
  const { tx, finished } = await begin(['records', 'meta'], 'readwrite');
  tx.objectStore('records').clear();
  tx.objectStore('meta').put([], 'live');
  tx.objectStore('meta').delete('fingerprint');
  await finished;
}

/** Whether an error is the browser's storage quota (IndexedDB reports it on the transaction). */
export const isQuotaError = e => e?.name === 'QuotaExceededError' || /quota/i.test(e?.message ?? '');
