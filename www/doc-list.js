// The list of an index's documents for the page: id, meta and window count of each.
//
// A stopgap beside the package, kept apart here: the index has no call that lists its documents
// without decoding them (`index.documents()` yields each with every window's vectors dequantized:
// ~4 KB per token of the full model), so this reads the index's own `docs` records (records.js:
// { id, meta, windows: Uint32Array [n, 4], bytes }) in one read-only transaction of its database.
// Records that do not have that shape are skipped (the index's own open checks them). Remove this
// file once the index lists its documents itself.
import { DB_PREFIX } from '../pkg/src/index/storage.js';

const isObject = v => v !== null && typeof v === 'object' && !Array.isArray(v);

/** [{ id, meta, windows }] of the IndexedDB index `name`, in key order. */
export function listDocuments(name) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_PREFIX + name);
    let absent = false;
    req.onerror = e => { e.preventDefault?.(); if (absent) resolve([]); else reject(req.error); };
    req.onupgradeneeded = () => { absent = true; req.transaction.abort(); }; // no such index: create nothing
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = () => db.close();
      if (!db.objectStoreNames.contains('docs')) { db.close(); resolve([]); return; }
      const get = db.transaction('docs').objectStore('docs').getAll();
      get.onsuccess = () => {
        db.close();
        resolve(get.result.filter(d => isObject(d) && typeof d.id === 'string' && d.windows instanceof Uint32Array && d.windows.length % 4 === 0)
          .map(d => ({ id: d.id, meta: isObject(d.meta) ? d.meta : {}, windows: d.windows.length / 4 })));
      };
      get.onerror = () => { db.close(); reject(get.error); };
    };
  });
}

/** The same from `index.documents()` (any storage; slow: every vector is decoded). */
export async function listDocumentsSlowly(index) {
  const out = [];
  for await (const d of index.documents()) out.push({ id: d.id, meta: isObject(d.meta) ? d.meta : {}, windows: d.windows.length });
  return out;
}
