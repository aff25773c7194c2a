// Runs inside the test page: the package's hybrid index on IndexedDB, with the tiny-m3 fixture
// model's real encodings (and synthetic 1024-wide vectors where size matters). Every function
// returns plain data for tests/browser/index.test.mjs to assert on.
import { load, openIndex, deleteIndex, modelFingerprint, sameModel } from '/pkg/src/index.js';
import { rng, randomUnit, simpleDoc } from '/tests/js/corpus.mjs';

const S = (globalThis.indexTest ??= {});
const WORDS = 'garden bees honey river stone bread winter harbour ferry library tea olive compost mountain trail lake ice starter dough flour salt water light map bridge market'.split(' ');

/** Deterministic text of `n` words. */
function text(seed, n) {
  const r = rng(seed);
  return Array.from({ length: n }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ') + '.';
}

const grab = async f => {
  try { await f(); return { name: 'none', message: 'no error' }; } catch (e) { return { name: e?.name, message: e?.message ?? String(e), kind: e?.kind }; }
};

/** Loads the tiny model, takes its fingerprint and encodes the corpus and the queries. */
export async function prepare({ docs = 24 } = {}) {
  const t0 = performance.now();
  S.model = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: false });
  S.fp = await modelFingerprint(S.model);
  const texts = Array.from({ length: docs }, (_, i) => text(i + 1, i % 4 === 0 ? 120 : 25));
  const embs = await S.model.encode(texts, { colbertSpans: true, maxLength: 64 });
  S.items = texts.map((t, i) => ({ id: `doc-${i}`, text: t, meta: { n: i }, embedding: embs[i] }));
  S.queries = await S.model.encode(['winter ferry harbour', 'honey bees garden', 'bread dough flour salt'], { maxLength: 64 });
  // The same model on the calling thread: its fingerprint is the same model's.
  const local = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: false, worker: false });
  const fpLocal = await modelFingerprint(local);
  await local.dispose();
  return { dim: S.fp.dim, windows: embs.reduce((n, e) => n + e.windows.length, 0), sameModel: sameModel(S.fp, fpLocal), ms: performance.now() - t0 };
}

/** Plain results of the queries: per query the hits' ids, scores and windows. */
async function searchAll(index) {
  const out = [];
  for (const q of S.queries) {
    const r = await index.search(q, { k: 8 });
    out.push(r.hits.map(h => ({ id: h.id, score: h.score, dense: h.dense, sparse: h.sparse, colbert: h.colbert, window: h.window })));
  }
  return out;
}
const view = st => ({ ...st, memoryBytes: undefined, fingerprint: undefined });

/** Creates index `name` with the corpus (or its first `count` documents). */
export async function create(name, { count, ...options } = {}) {
  const index = await openIndex(name, { fingerprint: S.fp, ...options });
  const t0 = performance.now();
  await index.add(S.items.slice(0, count ?? S.items.length));
  const addMs = performance.now() - t0;
  const t1 = performance.now();
  const results = await searchAll(index);
  const searchMs = (performance.now() - t1) / S.queries.length;
  const st = view(index.stats());
  index.close();
  return { stats: st, results, addMs, searchMs };
}

/** Opens index `name` (with the model's fingerprint) and searches. */
export async function reopen(name) {
  const t0 = performance.now();
  const index = await openIndex(name, { fingerprint: S.fp });
  const openMs = performance.now() - t0;
  const results = await searchAll(index);
  const st = view(index.stats());
  const got = await index.get('doc-4');
  index.close();
  return { stats: st, results, openMs, doc4: got && { text: got.text, windows: got.windows.length, spans: Array.from(got.windows[0].colbertSpans.slice(0, 6)) } };
}

/** The stored keys of index `name`, read with IndexedDB itself. */
export function storedKeys(name) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(`bge-m3-index:${name}`);
    req.onsuccess = () => {
      const db = req.result, tx = db.transaction(['docs', 'lanes', 'tokens', 'texts', 'meta']), out = {};
      for (const s of ['docs', 'lanes', 'tokens', 'texts']) tx.objectStore(s).count().onsuccess = e => { out[s] = e.target.result; };
      tx.objectStore('meta').get('rev').onsuccess = e => { out.rev = e.target.result; };
      tx.oncomplete = () => { db.close(); resolve(out); };
      tx.onerror = () => reject(tx.error);
    };
    req.onerror = () => reject(req.error);
  });
}

/** Aborts add() calls on index `name`: once before it starts, once in its IndexedDB transaction
 *  (the abort is queued the moment the write transaction is opened, so it lands while the puts
 *  are pending). Returns the errors and the index before and after. */
export async function abortAdds(name) {
  const index = await openIndex(name, { fingerprint: S.fp });
  const before = { stats: view(index.stats()), results: await searchAll(index), keys: await storedKeys(name) };
  const fresh = S.items.map(d => ({ ...d, id: `new-${d.id}` }));
  const early = new AbortController();
  early.abort();
  const beforeStart = await grab(() => index.add(fresh, { signal: early.signal }));
  const ac = new AbortController();
  const open = IDBDatabase.prototype.transaction;
  let hooked = 0;
  IDBDatabase.prototype.transaction = function (stores, mode, ...rest) {
    const tx = open.call(this, stores, mode, ...rest);
    if (mode === 'readwrite' && this.name === `bge-m3-index:${name}`) { hooked++; queueMicrotask(() => ac.abort()); }
    return tx;
  };
  let inTx;
  try { inTx = await grab(() => index.add(fresh, { signal: ac.signal })); } finally { IDBDatabase.prototype.transaction = open; }
  const after = { stats: view(index.stats()), results: await searchAll(index), keys: await storedKeys(name) };
  const added = await index.add(fresh);
  const finally_ = view(index.stats());
  index.close();
  return { before, after, beforeStart, inTx, hooked, added, finalDocs: finally_.documents };
}

/** Synthetic documents of 1024-wide vectors (256 tokens a window) for index `name`: about
 *  `kb` KB of storage each. */
function bigDocs(prefix, n) {
  const r = rng(9);
  return Array.from({ length: n }, (_, i) => simpleDoc(r, `${prefix}${i}`, { dim: 1024, windows: 1, rows: 256, sparseIds: 60 }));
}

/** Creates index `name` of 1024-wide synthetic vectors with two documents. */
export async function createBig(name) {
  const fp = { dim: 1024, probe: randomUnit(rng(1024), 1024) };
  S.bigFp = fp;
  const index = await openIndex(name, { fingerprint: fp });
  await index.add(bigDocs('base', 2));
  const st = view(index.stats());
  index.close();
  return { stats: st };
}

/** An add that does not fit the storage quota: its error, the index before and after. */
export async function quotaAdd(name) {
  const index = await openIndex(name, { fingerprint: S.bigFp });
  const q = bigDocs('base', 1)[0].embedding.windows[0];
  const search = async () => (await index.search(q, { k: 5 })).hits.map(h => [h.id, h.score]);
  const before = { stats: view(index.stats()), hits: await search(), keys: await storedKeys(name) };
  const docs = bigDocs('more', 8); // ~2 MB
  const error = await grab(() => index.add(docs));
  const after = { stats: view(index.stats()), hits: await search(), keys: await storedKeys(name) };
  index.close();
  return { before, after, error };
}

/** After the quota is back: the same add goes through. */
export async function bigAdd(name) {
  const index = await openIndex(name, { fingerprint: S.bigFp });
  await index.add(bigDocs('more', 8));
  const st = view(index.stats());
  index.close();
  return { stats: st };
}

/** The fingerprint check: another model's fingerprint, and opening without one. */
export async function fingerprintChecks(name) {
  const other = { dim: S.fp.dim, probe: randomUnit(rng(77), S.fp.dim) };
  return {
    other: await grab(() => openIndex(name, { fingerprint: other })),
    wider: await grab(() => openIndex(name, { fingerprint: { dim: 1024, probe: randomUnit(rng(1), 1024) } })),
    without: await grab(async () => (await openIndex(name)).close()),
    missing: await grab(() => openIndex(`${name}-never-created`)),
  };
}

/** Export of index `from`, imported into `to` (a new index); both searched. */
export async function exportImport(from, to) {
  const a = await openIndex(from, { fingerprint: S.fp });
  const blob = await a.export();
  const b = await openIndex(to, { fingerprint: S.fp });
  const r = await b.import(blob);
  const out = { bytes: blob.size, imported: r, a: { stats: view(a.stats()), results: await searchAll(a) }, b: { stats: view(b.stats()), results: await searchAll(b) } };
  a.close(); b.close();
  return out;
}

/** Removes documents from `name`; stats of `name` and `other`. */
export async function removeFrom(name, ids, other) {
  const a = await openIndex(name, { fingerprint: S.fp });
  const removed = await a.remove(ids);
  const b = await openIndex(other, { fingerprint: S.fp });
  const out = { removed, a: view(a.stats()), b: view(b.stats()) };
  a.close(); b.close();
  return out;
}

export async function remove(name) {
  return deleteIndex(name);
}

/** Two instances of one index in this page: a write by one is seen by the other's next call. */
export async function twoInstances(name) {
  const a = await openIndex(name, { fingerprint: S.fp });
  const b = await openIndex(name, { fingerprint: S.fp });
  const before = b.stats().documents;
  await a.add([{ ...S.items[1], id: 'seen-by-b' }]);
  const r = await b.search(S.items[1].embedding, { k: 5 }); // doc-1's own vectors: doc-1 and its copy first
  const got = await b.get('seen-by-b');
  await b.remove(['seen-by-b']);
  await a.search(S.queries[0]);
  const out = { before, afterB: b.stats().documents, found: !!got, inHits: r.hits.some(h => h.id === 'seen-by-b'), afterA: a.stats().documents };
  a.close(); b.close();
  return out;
}
