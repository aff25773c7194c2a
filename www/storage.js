// The stored index on the page: restoring it (records checked, damaged ones set apart), the
// document list (remove, clear), export to / import from a file, how much this browser stores and
// whether it keeps it (persistent storage), and what a full storage means. The records themselves
// are kept by db.js; the file format and the checks are index-file.js's.
import * as store from './db.js';
import { exportIndex, readIndexFile, validDoc, validFingerprint, docLabel } from './index-file.js';
import { state } from './state.js';
import { $, el, show, fmtBytes, fmtInt } from './ui.js';
import { checkFingerprint, sameModel } from './model-panel.js';
import { renderResults, rescoreLast } from './results.js';

const plural = (n, one, many = `${one}s`) => `${fmtInt(n)} ${n === 1 ? one : many}`;

// ── Restore ───────────────────────────────────────────────────────────────────────────────────
/** The index from earlier visits. Every record is checked as an imported one would be: a damaged
 *  record is left out (and named), never allowed to break the page. */
export async function restoreIndex() {
  let loaded;
  try {
    loaded = await store.loadIndex();
  } catch (e) {
    show($('index-msg'), `This browser's storage could not be opened (private mode?), so the index will not survive a reload: ${e.message}`, 'warn');
    renderDocs();
    renderStorage();
    return;
  }
  let fingerprint = null, fpProblem = null;
  if (loaded.fingerprint != null || loaded.records.length) {
    try { fingerprint = validFingerprint(loaded.fingerprint, 'its model fingerprint'); } catch (e) { fpProblem = e.message; }
  }
  const docs = [], damaged = [];
  loaded.records.forEach(({ key, value }, i) => {
    const where = docLabel(value, i);
    if (!fingerprint) { damaged.push({ key, where, problem: fpProblem }); return; }
    try { docs.push({ ...validDoc(value, { dim: fingerprint.hiddenSize, where }), gen: key[0] }); } catch (e) { damaged.push({ key, where, problem: e.message }); }
  });
  state.docs = docs.sort((a, b) => a.addedAt - b.addedAt);
  state.indexFingerprint = fingerprint;
  state.damaged = damaged;
  renderDamaged();
  renderDocs();
  renderStorage();
  if (docs.length) show($('index-msg'), `${plural(docs.length, 'document')} restored from this browser's storage.`, 'info');
  // What a failed run or a closed tab left behind: never part of the index, deleted now.
  if (loaded.stale) store.dropStale().then(renderStorage, () => {});
  navigator.storage?.persisted?.().then(p => { state.persisted ??= p; renderStorage(); }, () => {});
}

/** The damaged records found on restore, and what can be done about them. */
function renderDamaged() {
  const box = $('damaged'), list = state.damaged;
  box.hidden = !list.length;
  document.body.dataset.damaged = String(list.length);
  if (!list.length) return;
  const allOfThem = !state.indexFingerprint;
  $('damaged-text').textContent = allOfThem
    ? `The stored index is damaged: ${list[0].problem}. Its ${plural(list.length, 'document')} cannot be checked or searched. Clear the index (and import an export of it, if you have one).`
    : `${plural(list.length, 'stored document')} ${list.length === 1 ? 'is' : 'are'} damaged and left out of the index: ${list.slice(0, 3).map(d => d.problem).join('; ')}${list.length > 3 ? '; …' : ''}. Remove ${list.length === 1 ? 'it' : 'them'}, or clear the index.`;
  $('damaged-remove').hidden = allOfThem;
}

export async function removeDamaged() {
  try {
    await store.deleteRecords(state.damaged.map(d => d.key));
  } catch (e) {
    show($('index-msg'), `The damaged records could not be removed: ${e.message}`);
    return;
  }
  show($('index-msg'), `Removed ${plural(state.damaged.length, 'damaged record')}.`, 'ok');
  state.damaged = [];
  if (!state.docs.length) state.indexFingerprint = null; // the store dropped it with the last record
  renderDamaged();
  renderStorage();
}

// ── The list ──────────────────────────────────────────────────────────────────────────────────
export function renderDocs() {
  const ul = $('docs');
  ul.textContent = '';
  $('doc-count').textContent = state.docs.length ? `· ${plural(state.docs.length, 'document')}` : '';
  document.body.dataset.docs = String(state.docs.length);
  if (!state.docs.length) {
    ul.append(el('li', { class: 'muted small none', text: 'No documents yet. They are stored in this browser only.' }));
    return;
  }
  for (const d of state.docs) {
    const wins = d.windows.length;
    ul.append(el('li', { class: 'doc', dataset: { id: d.id } },
      el('span', { class: 'doc-name', title: d.name, text: d.name }),
      d.lang ? el('span', { class: 'lang', text: d.lang }) : null,
      el('span', { class: 'doc-meta muted small', text: `${fmtInt(d.tokens)} tokens${wins > 1 ? ` · ${wins} windows` : ''}` }),
      el('button', { class: 'icon remove', 'aria-label': `Remove ${d.name}`, title: 'Remove from the index', onclick: () => removeDoc(d.id) }, '×')));
  }
}

/** Writes to the index wait for the indexing job (it replaces or adds records when it ends). */
function busy(what) {
  if (!state.indexing && !state.importing) return false;
  show($('index-msg'), `${state.importing ? 'An import' : 'Indexing'} is running: ${what} when it is done${state.indexing ? ' (or cancel it)' : ''}.`, 'warn');
  return true;
}

async function removeDoc(id) {
  if (busy('remove documents')) return;
  const doc = state.docs.find(d => d.id === id);
  if (!doc) return;
  try {
    await store.deleteRecords([[doc.gen, doc.id]]);
  } catch (e) {
    show($('index-msg'), `“${doc.name}” could not be removed: ${e.message}`);
    return;
  }
  state.docs = state.docs.filter(d => d !== doc);
  if (!state.docs.length) state.indexFingerprint = null;
  renderDocs(); checkFingerprint(); renderStorage();
  if (state.last) await rescoreLast();
}

export async function clearIndex() {
  state.indexing?.abort();
  try {
    await store.clearAll();
  } catch (e) {
    show($('index-msg'), `The index could not be cleared: ${e.message}`);
    return;
  }
  state.docs = [];
  state.indexFingerprint = null;
  state.damaged = [];
  state.last = null;
  renderDamaged(); renderDocs(); checkFingerprint(); renderResults(); renderStorage();
  show($('index-msg'), 'The index is empty.', 'info');
}

// ── Storage used, persistence, a full storage ────────────────────────────────────────────────
export async function renderStorage() {
  if (!navigator.storage?.estimate) return;
  const { usage, quota } = await navigator.storage.estimate();
  const kept = state.persisted === true ? ' Persistent: the browser keeps it until you remove it.'
    : state.persisted === false ? ' Not persistent: the browser may delete it when the disk runs low.' : '';
  $('storage').textContent = `Stored in this browser (index and cached model): ${fmtBytes(usage)} of ${fmtBytes(quota)} available.${kept}`;
  $('storage').dataset.persisted = String(state.persisted);
}

/** Asks the browser once to keep this site's storage (the index would otherwise be evictable);
 *  called when the index is first written, and when the storage is full. */
export async function askPersist() {
  if (state.persistAsked || !navigator.storage?.persist) return state.persisted;
  state.persistAsked = true;
  try { state.persisted = await navigator.storage.persist(); } catch { state.persisted = false; }
  renderStorage();
  return state.persisted;
}

/** What a failed write means for the person: `what` failed ("Indexing 40 documents"), and the
 *  index is as it was before. For a full storage: how much is used, and what frees space. */
export async function writeFailure(what, e) {
  const kept = state.docs.length ? `the index is as it was before (${plural(state.docs.length, 'document')})` : 'the index is still empty';
  if (!store.isQuotaError(e)) return `${what} failed: ${e?.message ?? e}. Nothing of it was kept; ${kept}.`;
  const persisted = await askPersist();
  const est = await navigator.storage?.estimate?.().catch(() => null);
  const used = est ? ` (the browser reports ${fmtBytes(est.usage)} used of the ${fmtBytes(est.quota)} it allows this site)` : '';
  return `This browser's storage for this site is full${used}. ${what} stopped: nothing of it was kept; ${kept}. Free space by removing documents or the downloaded model (“Forget downloaded model”), or free disk space, then try again.${persisted === false ? ' The browser did not grant persistent storage to this site.' : ''}`;
}

// ── Export / import ───────────────────────────────────────────────────────────────────────────
export function exportIndexFile() {
  if (!state.docs.length) { show($('index-msg'), 'The index is empty: nothing to export.', 'warn'); return; }
  const blob = exportIndex(state.indexFingerprint, state.docs);
  const a = el('a', { href: URL.createObjectURL(blob), download: `bge-m3-index-${new Date().toISOString().slice(0, 10)}.m3index` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  show($('index-msg'), `Exported ${plural(state.docs.length, 'document')} (${fmtBytes(blob.size)}).`, 'ok');
}

/** Imports an index file: checked whole first, then stored in one transaction, so that the
 *  stored index either gains all of its documents or stays as it was. */
export async function importIndexFile(file) {
  show($('index-msg'), '');
  if (busy('import')) return;
  state.importing = true;
  document.body.dataset.importing = 'yes';
  try {
    let data;
    try { data = await readIndexFile(file); } catch (e) {
      show($('index-msg'), `“${file.name}” could not be imported: ${e.message}. Nothing was stored; ${state.docs.length ? `the index is as it was (${plural(state.docs.length, 'document')})` : 'the index is still empty'}.`);
      return;
    }
    if (state.docs.length && state.indexFingerprint && !sameModel(state.indexFingerprint, data.fingerprint)) {
      show($('index-msg'), `“${file.name}” was made with a different model (${data.fingerprint.hiddenSize}-dimensional, from ${data.fingerprint.source}) than your current index. Clear the index first to import it.`);
      return;
    }
    let stored;
    try { stored = await store.importDocs(data.docs, data.fingerprint); } catch (e) {
      show($('index-msg'), await writeFailure(`The import of “${file.name}” (${plural(data.docs.length, 'document')})`, e));
      return;
    }
    if (!state.indexFingerprint) state.indexFingerprint = data.fingerprint;
    const byId = new Map(state.docs.map(d => [d.id, d]));
    for (const d of stored) byId.set(d.id, d);
    state.docs = [...byId.values()].sort((a, b) => a.addedAt - b.addedAt);
    renderDocs(); checkFingerprint();
    show($('index-msg'), `Imported ${plural(data.docs.length, 'document')} from “${file.name}”.${state.mismatch ? ' They were made with another model than the one loaded: re-index them to search.' : ''}`, state.mismatch ? 'warn' : 'ok');
    askPersist();
    if (state.last && !state.mismatch) await rescoreLast();
  } finally {
    state.importing = false;
    document.body.dataset.importing = 'no';
    renderStorage();
  }
}
