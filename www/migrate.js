// The index of the previous version of this page (IndexedDB 'bge-m3-demo': version 2, records
// keyed [generation, id] with the committed generations in meta 'live'; version 1, one store
// 'docs') moves into the package's index on the first start of this version: its documents are
// checked (index-file.js), added in one `add` (all of them or none), and the old database is
// deleted only after that add is committed. A failed add (a full storage: kind 'quota') leaves the
// old database as it was, and the next start tries again; an add that committed but whose old
// database was not deleted yet is repeated harmlessly (an add replaces documents of the same id).
import { sameModel, openIndex, deleteIndex } from '../pkg/src/index.js';
import { validDoc, validFingerprint, docLabel, toItem } from './index-file.js';
import { openCurrent, createCurrent, deleteCurrent, COLBERT_OPTIONS } from './library.js';

export const OLD_DB = 'bge-m3-demo';

const request = req => new Promise((resolve, reject) => { req.onsuccess = () => resolve(req.result); req.onerror = () => reject(req.error); });
const gensOf = live => (Array.isArray(live) ? live.filter(Number.isSafeInteger) : []);

/** The old store as it was committed: { fingerprint (unchecked), records: [value] }, or null when
 *  there is none. */
async function readOld() {
  if (indexedDB.databases && !(await indexedDB.databases()).some(d => d.name === OLD_DB)) return null;
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open(OLD_DB);
    let absent = false;
    req.onupgradeneeded = () => { absent = true; req.transaction.abort(); }; // none: create nothing
    req.onsuccess = () => resolve(req.result);
    req.onerror = e => { e.preventDefault?.(); if (absent) resolve(null); else reject(req.error); };
  });
  if (!db) return null;
  try {
    db.onversionchange = () => db.close();
    const stores = [...db.objectStoreNames];
    if (!stores.includes('meta')) return { fingerprint: null, records: [] };
    if (stores.includes('records')) {
      // Version 2: the live generations; of an id in several, the latest.
      const tx = db.transaction(['records', 'meta']);
      const live = gensOf(await request(tx.objectStore('meta').get('live'))).sort((a, b) => a - b);
      const fingerprint = await request(tx.objectStore('meta').get('fingerprint'));
      const byId = new Map();
      for (const g of live) {
        for (const v of await request(tx.objectStore('records').getAll(IDBKeyRange.bound([g], [g, []])))) byId.set(String(v?.id), v);
      }
      return { fingerprint, records: [...byId.values()] };
    }
    if (stores.includes('docs')) {
      const tx = db.transaction(['docs', 'meta']);
      return { fingerprint: await request(tx.objectStore('meta').get('fingerprint')), records: await request(tx.objectStore('docs').getAll()) };
    }
    return { fingerprint: null, records: [] };
  } finally {
    db.close();
  }
}

function deleteOld() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase(OLD_DB);
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error);
  });
}

/** Moves the old store into the current index (see above). Returns null when there was nothing
 *  to move, else { moved, dropped: [problem] }: records that fail the old checks (the previous
 *  version left them out too) or that the index refuses (its own checks: unit vectors, …), each
 *  named with its problem for the person. Throws (the old store kept) when the move failed: the index's
 *  error (kind 'quota', …), or kind 'model' when the current index holds another model's vectors,
 *  or kind 'format' when the old store's fingerprint is damaged. */
export async function migrateOldStore() {
  const old = await readOld();
  if (!old) return null;
  if (!old.records.length) { await deleteOld(); return null; }
  let fp;
  try { fp = validFingerprint(old.fingerprint, 'the previous version\'s model fingerprint'); } catch (e) { throw Object.assign(e, { kind: 'format' }); }
  const docs = [], dropped = [];
  old.records.forEach((value, i) => {
    try { docs.push(validDoc(value, { dim: fp.hiddenSize, where: docLabel(value, i) })); } catch (e) { dropped.push(e.message); }
  });
  const fingerprint = { dim: fp.hiddenSize, probe: fp.probe };
  let index = await openCurrent(), moved = 0;
  try {
    if (index && !sameModel(index.stats().fingerprint, fingerprint)) {
      if (index.stats().documents > 0) {
        throw Object.assign(new Error(`the current index holds another model's vectors (${index.stats().fingerprint.dim}-dimensional) than the previous version's ${docs.length} documents (${fp.hiddenSize}-dimensional, from ${fp.source}); they stay in their old store`), { kind: 'model' });
      }
      index.close();
      index = null;
      await deleteCurrent();
    }
    index ??= await createCurrent(fingerprint, COLBERT_OPTIONS[0]);
    let items = docs.map(toItem);
    try {
      if (items.length) await index.add(items);
      moved = items.length;
    } catch (e) {
      if (e?.kind !== 'input') throw e;
      // A record the old checks passed but the index refuses (its own rules: unit vectors, …):
      // found by adding each alone to a scratch memory index; the others are added.
      const bad = await refused(items, fingerprint);
      for (const { item, error } of bad) dropped.push(`${item.meta.name} (${item.id}): ${error}`);
      items = items.filter(it => !bad.some(b => b.item === it));
      if (items.length) await index.add(items);
      moved = items.length;
    }
  } finally {
    index?.close();
  }
  await deleteOld();
  return { moved, dropped };
}

/** The items the index refuses, each with the index's message: each added alone to a memory
 *  index of the same model (deleted after). */
async function refused(items, fingerprint) {
  const name = 'bge-m3-demo migration check';
  const scratch = await openIndex(name, { storage: 'memory', fingerprint });
  const bad = [];
  try {
    for (const item of items) {
      try { await scratch.add([item]); await scratch.clear(); } catch (error) {
        if (error?.kind !== 'input') throw error;
        bad.push({ item, error: error.message });
      }
    }
  } finally {
    scratch.close();
    await deleteIndex(name, { storage: 'memory' });
  }
  return bad;
}
