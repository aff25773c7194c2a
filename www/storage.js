// The stored index on the page: the document list (remove, clear), export to / import from a
// file, and how much this browser stores. The records themselves are kept by db.js.
import * as store from './db.js';
import { state } from './state.js';
import { $, el, show, fmtBytes, fmtInt } from './ui.js';
import { checkFingerprint, sameModel } from './model-panel.js';
import { renderResults, rescoreLast } from './results.js';

/** The index from earlier visits. */
export async function restoreIndex() {
  try {
    state.docs = await store.allDocs();
    state.indexFingerprint = (await store.getMeta('fingerprint')) ?? null;
  } catch (e) {
    show($('index-msg'), `This browser's storage could not be opened (private mode?), so the index will not survive a reload: ${e.message}`, 'warn');
  }
  renderDocs();
  renderStorage();
  if (state.docs.length) show($('index-msg'), `${state.docs.length} document${state.docs.length > 1 ? 's' : ''} restored from this browser's storage.`, 'info');
}

export function renderDocs() {
  const ul = $('docs');
  ul.textContent = '';
  $('doc-count').textContent = state.docs.length ? `· ${state.docs.length} document${state.docs.length > 1 ? 's' : ''}` : '';
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

async function removeDoc(id) {
  await store.deleteDoc(id);
  state.docs = state.docs.filter(d => d.id !== id);
  if (!state.docs.length) { state.indexFingerprint = null; await store.clearAll(); }
  renderDocs(); checkFingerprint(); renderStorage();
  if (state.last) await rescoreLast();
}

export async function clearIndex() {
  state.indexing?.abort();
  await store.clearAll();
  state.docs = [];
  state.indexFingerprint = null;
  state.last = null;
  renderDocs(); checkFingerprint(); renderResults(); renderStorage();
  show($('index-msg'), 'The index is empty.', 'info');
}

export async function renderStorage() {
  if (!navigator.storage?.estimate) return;
  const { usage, quota } = await navigator.storage.estimate();
  $('storage').textContent = `Stored in this browser (index and cached model): ${fmtBytes(usage)} of ${fmtBytes(quota)} available.`;
}

export function exportIndexFile() {
  if (!state.docs.length) { show($('index-msg'), 'The index is empty: nothing to export.', 'warn'); return; }
  const blob = store.exportIndex(state.indexFingerprint, state.docs);
  const a = el('a', { href: URL.createObjectURL(blob), download: `bge-m3-index-${new Date().toISOString().slice(0, 10)}.m3index` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  show($('index-msg'), `Exported ${state.docs.length} documents (${fmtBytes(blob.size)}).`, 'ok');
}

export async function importIndexFile(file) {
  show($('index-msg'), '');
  let data;
  try { data = await store.importIndex(file); } catch (e) { show($('index-msg'), `“${file.name}” could not be imported: ${e.message}.`); return; }
  if (state.docs.length && state.indexFingerprint && !sameModel(state.indexFingerprint, data.fingerprint)) {
    show($('index-msg'), `“${file.name}” was made with a different model (${data.fingerprint.hiddenSize}-dimensional, from ${data.fingerprint.source}) than your current index. Clear the index first to import it.`);
    return;
  }
  const ids = new Set(state.docs.map(d => d.id));
  await store.putDocs(data.docs);
  if (!state.indexFingerprint) { state.indexFingerprint = data.fingerprint; await store.setMeta('fingerprint', data.fingerprint); }
  for (const d of data.docs) if (!ids.has(d.id)) state.docs.push(d); else state.docs[state.docs.findIndex(x => x.id === d.id)] = d;
  renderDocs(); checkFingerprint(); renderStorage();
  show($('index-msg'), `Imported ${data.docs.length} documents from “${file.name}”.${state.mismatch ? ' They were made with another model than the one loaded: re-index them to search.' : ''}`, state.mismatch ? 'warn' : 'ok');
  if (state.last && !state.mismatch) await rescoreLast();
}
