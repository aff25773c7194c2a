// The stored index on the page: opening it at start (after moving the previous version's store
// into it, migrate.js), the document list (remove, clear), its size per lane and in page memory,
// export to / import from a file, how much this browser stores and whether it keeps it
// (persistent storage), and what a full storage means. The index itself is the package's
// (`openIndex`; which one is current: library.js).
import { sameModel } from '../pkg/src/index.js';
import { state } from './state.js';
import { $, el, show, fmtBytes, fmtInt } from './ui.js';
import { checkFingerprint, setReady } from './model-panel.js';
import { renderResults, rescoreLast } from './results.js';
import { openCurrent, createCurrent, deleteCurrent, dropLeftovers, hasStorage, POINTER, COLBERT_OPTIONS } from './library.js';
import { migrateOldStore } from './migrate.js';
import { readIndexFile as readV1File, toItem, V1_MAGIC } from './index-file.js';

export const plural = (n, one, many = `${one}s`) => `${fmtInt(n)} ${n === 1 ? one : many}`;
/** The index file's first bytes (the package's format, pkg/src/index/format.js). */
const INDEX_MAGIC = 'BGEM3HIX';

// ── Restore ───────────────────────────────────────────────────────────────────────────────────
/** The index from earlier visits: the previous version's store moved into it first (once), then
 *  the current index opened and listed. A store that cannot be opened or is damaged is said so;
 *  the page stays usable. */
export async function restoreIndex() {
  if (!hasStorage()) {
    show($('index-msg'), 'This browser gives this page no IndexedDB (private mode?): documents cannot be stored.', 'warn');
    renderAll();
    return;
  }
  let moved = null;
  try { moved = await migrateOldStore(); } catch (e) { moved = { error: e }; }
  await reopen();
  if (moved?.error?.kind === 'model') show($('index-msg'), `The index of the previous version of this page was not moved: ${moved.error.message}. Clear the index (export it first, to keep it) and reload the page to move them.`, 'warn');
  else if (moved?.error) show($('index-msg'), await writeFailure('Moving the index of the previous version of this page into the new index', moved.error, 'it stays in its old store and is moved on the next visit'), moved.error.kind === 'quota' ? 'error' : 'warn');
  else if (moved) show($('index-msg'), `${plural(moved.moved, 'document')} of the previous version of this page ${moved.moved === 1 ? 'was' : 'were'} moved into the new index${moved.dropped.length ? `; ${plural(moved.dropped.length, 'damaged record')} could not be: ${moved.dropped.slice(0, 3).join('; ')}` : ''}.`, moved.dropped.length ? 'warn' : 'ok');
  else if (state.docs.length) show($('index-msg'), `${plural(state.docs.length, 'document')} restored from this browser's storage.`, 'info');
  dropLeftovers().then(renderStorage, () => {});
  navigator.storage?.persisted?.().then(p => { state.persisted ??= p; renderStorage(); }, () => {});
  // Another tab re-indexed (and moved the pointer): follow it.
  addEventListener('storage', e => { if (e.key === POINTER) reopen().then(() => rescoreLast()); });
}

/** (Re)opens the current index and lists its documents. */
export async function reopen() {
  state.index?.close();
  state.index = null;
  state.docs = [];
  state.damaged = null;
  try {
    state.index = await openCurrent();
    await refreshDocs();
  } catch (e) {
    state.index = null;
    state.docs = [];
    state.damaged = e?.message ?? String(e);
  }
  if (state.index) state.colbert = state.index.stats().options.colbert;
  renderAll();
}

/** The document list from the index (all of it). */
export async function refreshDocs() {
  if (!state.index) { state.docs = []; return; }
  const list = (await state.index.list()).map(d => ({ ...d, meta: d.meta !== null && typeof d.meta === 'object' && !Array.isArray(d.meta) ? d.meta : {} }));
  state.docs = list.map(docEntry).sort((a, b) => a.addedAt - b.addedAt || (a.id < b.id ? -1 : 1));
}

/** A list entry from the index's id, meta and window count (meta as indexing.js writes it). */
export function docEntry({ id, meta, windows }) {
  const str = v => (typeof v === 'string' ? v : null);
  const num = v => (Number.isFinite(v) ? v : 0);
  return { id, name: str(meta.name) ?? id, lang: str(meta.lang), origin: str(meta.origin) ?? 'file', tokens: num(meta.tokens), addedAt: num(meta.addedAt), windows };
}

export function renderAll() {
  renderDamaged(); renderDocs(); renderColbertOption(); checkFingerprint(); renderStats(); renderStorage();
}

/** A store that could not be opened (damaged records, checked by the index on open). */
function renderDamaged() {
  $('damaged').hidden = !state.damaged;
  document.body.dataset.damaged = state.damaged ? 'yes' : 'no';
  if (state.damaged) $('damaged-text').textContent = `The stored index could not be opened: ${state.damaged}. Its documents cannot be searched. Clear the index (and import an export of it, if you have one).`;
}

/** The index to write to: the current one, made for the loaded model (and the chosen ColBERT
 *  option) when there is none yet or it is empty and of another model or option. Throws a message
 *  for the person when no model is loaded. */
export async function ensureIndex() {
  const fp = state.fingerprint;
  if (state.index) {
    const s = state.index.stats();
    if (s.documents > 0 || !fp || (sameModel(s.fingerprint, fp) && s.options.colbert === state.colbert)) return state.index;
    state.index.close();
    state.index = null;
    await deleteCurrent();
  }
  if (!fp) throw Object.assign(new Error('Load the model first (step 1): a new index is made for its vectors.'), { kind: 'input' });
  state.index = await createCurrent(fp, state.colbert);
  renderStats();
  return state.index;
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
    ul.append(el('li', { class: 'doc', dataset: { id: d.id } },
      el('span', { class: 'doc-name', title: d.name, text: d.name }),
      d.lang ? el('span', { class: 'lang', text: d.lang }) : null,
      el('span', { class: 'doc-meta muted small', text: `${fmtInt(d.tokens)} tokens${d.windows > 1 ? ` · ${d.windows} windows` : ''}` }),
      el('button', { class: 'icon remove', 'aria-label': `Remove ${d.name}`, title: 'Remove from the index', onclick: () => removeDoc(d.id) }, '×')));
  }
}

/** Writes to the index wait for the indexing job. */
function busy(what) {
  if (!state.indexing && !state.importing) return false;
  show($('index-msg'), `${state.importing ? 'An import' : 'Indexing'} is running: ${what} when it is done${state.indexing ? ' (or cancel it)' : ''}.`, 'warn');
  return true;
}

async function removeDoc(id) {
  if (busy('remove documents')) return;
  const doc = state.docs.find(d => d.id === id);
  if (!doc || !state.index) return;
  try {
    await state.index.remove([id]);
  } catch (e) {
    show($('index-msg'), `“${doc.name}” could not be removed: ${e.message}`);
    return;
  }
  state.docs = state.docs.filter(d => d !== doc);
  renderDocs(); checkFingerprint(); renderStats(); renderStorage();
  if (state.last) await rescoreLast();
}

/** Deletes the index whole (its next document makes a new one, for the loaded model). */
export async function clearIndex() {
  state.indexing?.abort();
  await state.queue;
  try {
    state.index?.close();
    state.index = null;
    await deleteCurrent();
  } catch (e) {
    show($('index-msg'), `The index could not be cleared: ${e.message}`);
    await reopen();
    return;
  }
  state.docs = [];
  state.damaged = null;
  state.last = null;
  renderAll(); renderResults();
  show($('index-msg'), 'The index is empty.', 'info');
}

// ── Sizes: per lane in storage, in page memory ────────────────────────────────────────────────
const LANES = [
  ['dense', 'Dense', 'one vector per window'],
  ['sparse', 'Lexical', 'token ids and weights per window'],
  ['colbert', 'ColBERT', 'one row per token'],
  ['tokens', 'Tokens', 'ids and character spans, for highlights'],
  ['text', 'Text', 'UTF-8'],
  ['docs', 'Records', 'ids, names, window spans'],
];

export function renderStats() {
  const box = $('index-stats');
  box.textContent = '';
  const s = state.index?.stats();
  box.hidden = !s;
  if (!s) return;
  const o = s.options;
  const colbertNote = o.colbert === 'int8' ? 'int8, one row per token' : o.colbert === 'pooled' ? `int8, pooled: one row per ${o.poolFactor} tokens` : 'not stored';
  box.dataset.total = String(s.bytes.total);
  box.dataset.memory = String(s.memoryBytes);
  const rows = LANES.map(([k, label, what]) => el('tr', { dataset: { lane: k, bytes: String(s.bytes[k]) } },
    el('th', { scope: 'row', text: label }),
    el('td', { class: 'num', text: fmtBytes(s.bytes[k]) }),
    el('td', { class: 'muted', text: k === 'dense' ? `${o.dense}, ${what}` : k === 'colbert' ? colbertNote : what })));
  box.append(
    el('p', { class: 'small', text: `${plural(s.documents, 'document')} · ${plural(s.windows, 'window')} · ${plural(s.tokens, 'token')} · ${s.fingerprint.dim}-dimensional vectors` }),
    el('table', { class: 'lanes small' },
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Stored' }), el('th', { scope: 'col', class: 'num', text: 'Bytes' }), el('th', { scope: 'col', text: '' }))),
      el('tbody', {}, rows),
      el('tfoot', {}, el('tr', {}, el('th', { scope: 'row', text: 'Total' }), el('td', { class: 'num', text: fmtBytes(s.bytes.total) }), el('td', { class: 'muted', text: 'in IndexedDB' })))),
    el('p', { class: 'small muted', id: 'memory-line', text: `In page memory: ${fmtBytes(s.memoryBytes)} — the dense lane and the lexical postings; ColBERT rows, tokens and text stay in IndexedDB until a search reads its candidates.` }));
}

/** The ColBERT option chooser (`state.colbert`, the option wanted): for an index with documents
 *  whose option differs, a re-index is offered (indexing.js reindexAll); otherwise it applies to
 *  the next index made. */
export function renderColbertOption() {
  const sel = $('colbert-option');
  const has = state.index?.stats().options.colbert;
  sel.value = state.colbert;
  const change = !!(has && state.docs.length && state.colbert !== has);
  $('colbert-change').hidden = !change;
  if (change) $('colbert-change-text').textContent = `This index keeps ColBERT as “${has}”. Changing it to “${state.colbert}” means re-indexing its ${plural(state.docs.length, 'document')} (their text is stored; the vectors are made again by the loaded model).`;
  document.body.dataset.colbert = has ?? state.colbert;
}

export function chooseColbert(value) {
  if (COLBERT_OPTIONS.includes(value)) state.colbert = value;
  renderColbertOption();
}

// ── Storage used, persistence, a full storage ────────────────────────────────────────────────
export async function renderStorage() {
  if (!navigator.storage?.estimate) return;
  const { usage, quota } = await navigator.storage.estimate();
  const kept = state.persisted === true ? ' Persistent: the browser keeps it until you remove it.'
    : state.persisted === false ? ' Not persistent: the browser may delete it when the disk runs low.' : '';
  const s = state.index?.stats();
  $('storage').textContent = `Stored in this browser (index and cached model): ${fmtBytes(usage)} of ${fmtBytes(quota)} available${s ? `; the index's records take ${fmtBytes(s.bytes.total)} of it` : ''}.${kept}`;
  $('storage').dataset.persisted = String(state.persisted);
  $('storage').dataset.usage = String(usage);
  $('storage').dataset.quota = String(quota);
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

/** What a failed write means for the person: `what` failed ("Indexing 40 documents"), and what
 *  is kept (`kept`; default: the index as it was). A full storage (the index's kind 'quota') says
 *  how much is used and what frees space. */
export async function writeFailure(what, e, kept = null) {
  kept ??= state.docs.length ? `the index is as it was before (${plural(state.docs.length, 'document')})` : 'the index is still empty';
  if (e?.kind !== 'quota') return `${what} failed: ${e?.message ?? e}. Nothing of it was kept; ${kept}.`;
  const persisted = await askPersist();
  const est = await navigator.storage?.estimate?.().catch(() => null);
  const used = est ? ` (the browser reports ${fmtBytes(est.usage)} used of the ${fmtBytes(est.quota)} it allows this site)` : '';
  return `This browser's storage for this site is full${used}. ${what} stopped: nothing of it was kept; ${kept}. Free space by removing documents or the downloaded model (“Forget downloaded model”), or free disk space, then try again.${persisted === false ? ' The browser did not grant persistent storage to this site.' : ''}`;
}

// ── Export / import ───────────────────────────────────────────────────────────────────────────
export async function exportIndexFile() {
  if (!state.index || !state.docs.length) { show($('index-msg'), 'The index is empty: nothing to export.', 'warn'); return; }
  let blob;
  try { blob = await state.index.export(); } catch (e) { show($('index-msg'), `The index could not be exported: ${e.message}`); return; }
  const a = el('a', { href: URL.createObjectURL(blob), download: `bge-m3-index-${new Date().toISOString().slice(0, 10)}.m3index` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  show($('index-msg'), `Exported ${plural(state.docs.length, 'document')} (${fmtBytes(blob.size)}).`, 'ok');
}

/** Which format a file is: 'index' (the package's index file), 'v1' (the previous page's), null. */
async function sniff(file) {
  if (file.size < 8) return null;
  const magic = new TextDecoder().decode(new Uint8Array(await file.slice(0, 8).arrayBuffer()));
  return magic === INDEX_MAGIC ? 'index' : magic === V1_MAGIC ? 'v1' : null;
}

/** Imports an index file, whole or not at all: the package's own (`index.import`: merged into an
 *  index with documents, taking the file's options into an empty one), or one exported by the
 *  previous version of this page (v1: read and checked by index-file.js, then one `add`). */
export async function importIndexFile(file) {
  show($('index-msg'), '');
  if (busy('import')) return;
  state.importing = true;
  document.body.dataset.importing = 'yes';
  const kept = () => (state.docs.length ? `the index is as it was (${plural(state.docs.length, 'document')})` : 'the index is still empty');
  try {
    const format = await sniff(file);
    if (!format) {
      show($('index-msg'), `“${file.name}” could not be imported: this is not an index file (its first bytes are neither "${INDEX_MAGIC}" nor the previous version's "${V1_MAGIC}"). Nothing was stored; ${kept()}.`);
      return;
    }
    let n, note = '';
    try {
      if (format === 'index') {
        const index = await ensureIndex();
        const empty = index.stats().documents === 0;
        const r = await index.import(file, { mode: empty ? 'replace' : 'merge' });
        n = r.added + r.replaced;
      } else {
        n = await importV1(file);
        note = ' (an index file of the previous version of this page, converted)';
      }
    } catch (e) {
      if (e?.kind === 'quota') show($('index-msg'), await writeFailure(`The import of “${file.name}”`, e, kept()));
      else if (e?.kind === 'model') show($('index-msg'), `“${file.name}” was made with a different model than ${state.docs.length ? 'your current index' : 'the one loaded'}: ${e.message}. Nothing was stored; ${kept()}.${state.docs.length ? ' Clear the index first to import it.' : ''}`);
      else show($('index-msg'), `“${file.name}” could not be imported: ${e?.message ?? e}${/[.!?]$/.test(e?.message ?? '') ? '' : '.'} Nothing was stored; ${kept()}.`);
      return;
    }
    await refreshDocs();
    renderAll();
    show($('index-msg'), `Imported ${plural(n, 'document')} from “${file.name}”${note}.${state.mismatch ? ' They were made with another model than the one loaded: re-index them to search.' : ''}`, state.mismatch ? 'warn' : 'ok');
    askPersist();
    if (state.last && !state.mismatch) await rescoreLast();
  } finally {
    state.importing = false;
    document.body.dataset.importing = 'no';
    setReady();
    renderStorage();
  }
}

/** A v1 file: its documents (checked whole first) added in one `add`. Into an index of the same
 *  model; with no documents yet, into a new index for the file's model. Returns how many. */
async function importV1(file) {
  const data = await readV1File(file); // throws naming the document and field
  const fp = { dim: data.fingerprint.hiddenSize, probe: data.fingerprint.probe };
  let index = state.index;
  if (index && index.stats().documents === 0 && !sameModel(index.stats().fingerprint, fp)) {
    index.close();
    state.index = index = null;
    await deleteCurrent();
  }
  if (!index) state.index = index = await createCurrent(fp, state.colbert);
  if (!sameModel(index.stats().fingerprint, fp)) {
    throw Object.assign(new Error(`the file's vectors are ${fp.dim}-dimensional, from ${data.fingerprint.source}`), { kind: 'model' });
  }
  const r = await index.add(data.docs.map(toItem));
  return r.added + r.replaced;
}

