// The index, kept in this browser's IndexedDB: one record per document (text + the vectors of its
// windows, as typed arrays) and a "fingerprint" of the model that made the vectors.
// Export/import: one binary file (a JSON header + the typed arrays' bytes).

const DB_NAME = 'bge-m3-demo';
const DB_VERSION = 1;
export const FORMAT_VERSION = 1;

let dbPromise;
function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const d = req.result;
      if (!d.objectStoreNames.contains('docs')) d.createObjectStore('docs', { keyPath: 'id' });
      if (!d.objectStoreNames.contains('meta')) d.createObjectStore('meta');
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('the index database is open in another tab with an older version; close it and reload'));
  });
  return dbPromise;
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}
function result(req) {
  return new Promise((resolve, reject) => { req.onsuccess = () => resolve(req.result); req.onerror = () => reject(req.error); });
}

export async function allDocs() {
  const tx = (await db()).transaction('docs');
  const docs = await result(tx.objectStore('docs').getAll());
  return docs.sort((a, b) => a.addedAt - b.addedAt);
}

export async function putDocs(docs) {
  const tx = (await db()).transaction('docs', 'readwrite');
  for (const d of docs) tx.objectStore('docs').put(d);
  await done(tx);
}

export async function deleteDoc(id) {
  const tx = (await db()).transaction('docs', 'readwrite');
  tx.objectStore('docs').delete(id);
  await done(tx);
}

export async function clearAll() {
  const tx = (await db()).transaction(['docs', 'meta'], 'readwrite');
  tx.objectStore('docs').clear();
  tx.objectStore('meta').clear();
  await done(tx);
}

export async function getMeta(key) {
  const tx = (await db()).transaction('meta');
  return result(tx.objectStore('meta').get(key));
}

export async function setMeta(key, value) {
  const tx = (await db()).transaction('meta', 'readwrite');
  tx.objectStore('meta').put(value, key);
  await done(tx);
}

// ── Export / import ────────────────────────────────────────────────────────────────────────────
// File layout: "BGEM3IDX" (8 bytes), u32 LE header length, header JSON (UTF-8), zero padding to a
// multiple of 8, then the typed arrays' bytes, each at an 8-aligned offset. In the header every
// typed array is replaced by { "$a": "f32" | "u32", "o": byte offset in the data, "n": length }.

const MAGIC = 'BGEM3IDX';
const KINDS = { f32: Float32Array, u32: Uint32Array };

export function exportIndex(fingerprint, docs) {
  const chunks = [];
  let offset = 0;
  const pack = v => {
    if (v instanceof Float32Array || v instanceof Uint32Array) {
      const kind = v instanceof Float32Array ? 'f32' : 'u32';
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      const ref = { $a: kind, o: offset, n: v.length };
      chunks.push(bytes);
      const pad = (8 - (bytes.byteLength % 8)) % 8;
      if (pad) chunks.push(new Uint8Array(pad));
      offset += bytes.byteLength + pad;
      return ref;
    }
    if (Array.isArray(v)) return v.map(pack);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, pack(x)]));
    return v;
  };
  const header = pack({ format: FORMAT_VERSION, app: 'bge-m3-web demo', exportedAt: new Date().toISOString(), fingerprint, docs });
  const json = new TextEncoder().encode(JSON.stringify(header));
  const head = new Uint8Array(12);
  head.set(new TextEncoder().encode(MAGIC));
  new DataView(head.buffer).setUint32(8, json.byteLength, true);
  const pad = (8 - ((12 + json.byteLength) % 8)) % 8;
  return new Blob([head, json, new Uint8Array(pad), ...chunks], { type: 'application/octet-stream' });
}

export async function importIndex(blob) {
  const buf = await blob.arrayBuffer();
  const bytes = new Uint8Array(buf);
  if (bytes.byteLength < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw new Error('this file is not an index exported from this page');
  }
  const len = new DataView(buf).getUint32(8, true);
  if (12 + len > bytes.byteLength) throw new Error('the index file is truncated');
  let header;
  try { header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + len))); } catch { throw new Error('the index file is damaged (bad header)'); }
  if (header.format !== FORMAT_VERSION) throw new Error(`the index file has format ${header.format}; this page reads format ${FORMAT_VERSION}`);
  const base = 12 + len + ((8 - ((12 + len) % 8)) % 8);
  const unpack = v => {
    if (Array.isArray(v)) return v.map(unpack);
    if (v && typeof v === 'object') {
      if (typeof v.$a === 'string') {
        const T = KINDS[v.$a];
        const start = base + v.o, end = start + v.n * 4;
        if (!T || end > bytes.byteLength) throw new Error('the index file is truncated or damaged');
        return new T(buf.slice(start, end));
      }
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unpack(x)]));
    }
    return v;
  };
  const out = unpack(header);
  if (!Array.isArray(out.docs) || !out.fingerprint) throw new Error('the index file is damaged (no documents or no model fingerprint)');
  return out;
}
