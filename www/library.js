// Which of the package's indexes holds the person's documents, and how it is replaced whole.
//
// The documents live in one hybrid index of the package (`openIndex`, IndexedDB storage). Its
// name is kept in localStorage (POINTER); it starts as BASE_NAME. An index keeps the model
// fingerprint and the options it was created with, so a re-index (another model, another ColBERT
// option) builds a new index beside it — a staging index, named BASE_NAME~<time> — and only when
// every document is in it does the pointer move to it and the old index get deleted. A failed or
// cancelled re-index deletes the staging index; the old one was never touched. What a closed tab
// leaves behind (a staging index, or an old index after the pointer moved) is deleted on the next
// start (`dropLeftovers`), unless another tab holds the staging lock.
import { openIndex, deleteIndex } from '../pkg/src/index.js';
import { DB_PREFIX } from '../pkg/src/index/storage.js';

export const BASE_NAME = 'bge-m3-demo';
/** localStorage key of the current index's name. */
export const POINTER = 'bge-m3-demo:index';
/** Held (Web Locks) while a staging index is written, so that another tab's clean-up leaves it. */
const LOCK = 'bge-m3-demo:staging';

/** The ColBERT options offered at index creation (the index's own names), default first. */
export const COLBERT_OPTIONS = ['int8', 'pooled', 'none'];

export const hasStorage = () => typeof indexedDB !== 'undefined' && indexedDB !== null;

export function currentName() {
  try { return localStorage.getItem(POINTER) || BASE_NAME; } catch { return BASE_NAME; }
}

/** The current index, or null when there is none yet. Without a fingerprint `openIndex` opens an
 *  index that exists and rejects with kind 'input' for one that does not (every other input is
 *  ours, and right); other kinds ('format': a damaged store, 'io') are the caller's to show. */
export async function openCurrent() {
  try {
    return await openIndex(currentName(), { storage: 'indexeddb' });
  } catch (e) {
    if (e?.kind === 'input') return null;
    throw e;
  }
}

/** Creates the current index for the model `fingerprint` ({ dim, probe }) with ColBERT option
 *  `colbert`; an index of that name that exists is opened (kind 'model' if of another model). */
export function createCurrent(fingerprint, colbert) {
  return openIndex(currentName(), { storage: 'indexeddb', fingerprint, colbert });
}

/** Deletes the current index (all of its documents; another tab's open copy stops working). */
export function deleteCurrent() {
  return deleteIndex(currentName(), { storage: 'indexeddb' });
}

/** A staging index for a re-index: `index` (empty, for `fingerprint` and `colbert`), then either
 *  `commit()` (the pointer moves to it, the old index is deleted; returns the new name) or
 *  `discard()` (it is deleted). Holds the staging lock from start to end. */
export async function beginStaging(fingerprint, colbert) {
  let release;
  const ended = new Promise(r => { release = r; });
  await new Promise(acquired => (navigator.locks ? navigator.locks.request(LOCK, () => { acquired(); return ended; }) : acquired()));
  const name = `${BASE_NAME}~${Date.now().toString(36)}`;
  let index;
  try {
    index = await openIndex(name, { storage: 'indexeddb', fingerprint, colbert });
  } catch (e) {
    release();
    await deleteIndex(name, { storage: 'indexeddb' }).catch(() => {});
    throw e;
  }
  let done = false;
  return {
    name,
    index,
    async commit(old) {
      if (done) return name;
      done = true;
      try {
        const oldName = currentName();
        localStorage.setItem(POINTER, name);
        old?.close();
        await deleteIndex(oldName, { storage: 'indexeddb' }).catch(() => {}); // else dropLeftovers
        return name;
      } finally { release(); }
    },
    async discard() {
      if (done) return;
      done = true;
      try {
        index.close();
        await deleteIndex(name, { storage: 'indexeddb' });
      } finally { release(); }
    },
  };
}

/** Deletes the demo's indexes other than the current one (a staging index of a closed tab, an
 *  old index the pointer moved away from); not while another tab writes a staging index. Needs
 *  `indexedDB.databases()` (else nothing is deleted). Returns the names deleted. */
export async function dropLeftovers() {
  if (!indexedDB.databases) return [];
  const run = async lock => {
    if (lock === null) return [];
    const keep = DB_PREFIX + currentName();
    const names = (await indexedDB.databases()).map(d => d.name)
      .filter(n => n !== keep && (n === DB_PREFIX + BASE_NAME || n?.startsWith(`${DB_PREFIX}${BASE_NAME}~`)));
    for (const n of names) await deleteIndex(n.slice(DB_PREFIX.length), { storage: 'indexeddb' });
    return names.map(n => n.slice(DB_PREFIX.length));
  };
  return navigator.locks ? navigator.locks.request(LOCK, { ifAvailable: true }, run) : run(undefined);
}
