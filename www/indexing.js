// Step 2, documents in: files (text and HTML, checked and decoded here), pasted text and the
// sample corpus; the indexing job (save groups of documents through the model, each group one
// `add` to the package's index); re-indexing (another model, another ColBERT option) into a
// staging index that replaces the current one only when it is complete (library.js).
import { state } from './state.js';
import { $, show, fmtBytes, fmtInt, isAbort } from './ui.js';
import { setReady, checkFingerprint } from './model-panel.js';
import { ensureIndex, refreshDocs, docEntry, renderAll, renderDocs, renderStats, renderStorage, askPersist, writeFailure, plural } from './storage.js';
import { beginStaging } from './library.js';
import { MAX_WINDOW_TOKENS, MAX_TEXT } from '../pkg/src/index/checks.js';
import { rescoreLast } from './results.js';

const TEXT_EXTENSIONS = new Set(['txt', 'md', 'markdown', 'html', 'htm', 'xhtml', 'csv', 'tsv', 'json', 'xml', 'rst', 'tex', 'log', 'org', 'adoc', 'srt', 'vtt', 'yaml', 'yml']);
const MAX_FILE_BYTES = 50 * 1024 * 1024;
/** A save group: the documents encoded together and added to the index in one `add` (the page
 *  holds their vectors until then; the add is whole or nothing). Not a batch: the package batches
 *  windows by its own rules. */
const SAVE_GROUP_DOCS = 32;
const SAVE_GROUP_CHARS = 200_000;
/** Longest document name kept (names are meta of the index's documents). */
const MAX_NAME = 1000;

// ── Documents in ──────────────────────────────────────────────────────────────────────────────
function htmlToText(html) {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  doc.querySelectorAll('script, style, noscript, template, svg, iframe, object').forEach(n => n.remove());
  const title = doc.querySelector('title')?.textContent.trim();
  const blocks = /^(P|DIV|LI|H[1-6]|TR|BR|SECTION|ARTICLE|HEADER|FOOTER|BLOCKQUOTE|PRE|TABLE|UL|OL|DD|DT|FIGCAPTION)$/;
  let out = '';
  const walk = n => {
    if (n.nodeType === Node.TEXT_NODE) { out += n.nodeValue.replace(/\s+/g, ' '); return; }
    if (n.nodeType !== Node.ELEMENT_NODE) return;
    const block = blocks.test(n.tagName);
    if (block) out += '\n';
    for (const c of n.childNodes) walk(c);
    if (block) out += '\n';
  };
  walk(doc.body ?? doc.documentElement);
  return { title, text: out.replace(/[ \t]+\n/g, '\n').replace(/\n[ \t]+/g, '\n').replace(/\n{3,}/g, '\n\n').trim() };
}

async function readTextFile(file) {
  const ext = file.name.includes('.') ? file.name.split('.').pop().toLowerCase() : '';
  if (file.size > MAX_FILE_BYTES) throw new Error(`“${file.name}” is ${fmtBytes(file.size)}; files up to ${fmtBytes(MAX_FILE_BYTES)} can be added.`);
  if (/^(image|audio|video)\//.test(file.type) || ['pdf', 'docx', 'doc', 'odt', 'zip', 'png', 'jpg', 'jpeg', 'gif', 'exe'].includes(ext)) {
    throw new Error(`“${file.name}” is not a text file (${file.type || ext}). Add .txt, .md or .html files — for PDFs or Word files, copy the text and paste it.`);
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  const head = bytes.subarray(0, 8192);
  let text;
  if (head[0] === 0xff && head[1] === 0xfe) text = new TextDecoder('utf-16le').decode(bytes);
  else if (head[0] === 0xfe && head[1] === 0xff) text = new TextDecoder('utf-16be').decode(bytes);
  else {
    if (head.includes(0)) throw new Error(`“${file.name}” is not a text file (it holds binary data). Add .txt, .md or .html files.`);
    try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch {
      if (!TEXT_EXTENSIONS.has(ext) && !file.type.startsWith('text/')) throw new Error(`“${file.name}” is not a text file. Add .txt, .md or .html files.`);
      text = new TextDecoder('windows-1252').decode(bytes); // older text files
    }
  }
  let name = file.name;
  if (ext === 'html' || ext === 'htm' || ext === 'xhtml' || /^\s*<(!doctype html|html)/i.test(text)) {
    const h = htmlToText(text);
    text = h.text;
    if (h.title) name = `${h.title} (${file.name})`;
  }
  return { name, text, origin: 'file' };
}

export async function addFiles(fileList) {
  show($('index-msg'), '');
  if (!guardIndexing()) return;
  const items = [], problems = [];
  for (const f of fileList) {
    try { items.push(await readTextFile(f)); } catch (e) { problems.push(e.message); }
  }
  if (problems.length) show($('index-msg'), problems.join(' '), items.length ? 'warn' : 'error');
  if (items.length) await indexItems(items, { keepMessage: problems.length > 0 });
}

function guardIndexing() {
  if (!state.model) { show($('index-msg'), 'Load the model first (step 1): it is what turns your documents into vectors.'); return false; }
  if (state.mismatch) { show($('index-msg'), 'Re-index or clear the current index first: it was made with another model.'); return false; }
  if (state.damaged) { show($('index-msg'), 'The stored index could not be opened: clear it first.'); return false; }
  return true;
}

// The sample corpus ships with the page; it is fetched at start-up so that nothing is fetched
// once the model is loaded.
let corpusPromise, sampleSummary = '';
function sampleCorpus() {
  corpusPromise ??= (async () => {
    const r = await fetch('corpus/manifest.json');
    if (!r.ok) throw new Error(`the sample corpus is missing (HTTP ${r.status})`);
    const manifest = await r.json();
    sampleSummary = manifest.summary ?? '';
    return Promise.all(manifest.documents.map(async d => {
      const t = await fetch(`corpus/${d.file}`);
      if (!t.ok) throw new Error(`sample document ${d.file}: HTTP ${t.status}`);
      return { name: d.title, lang: d.lang, text: (await t.text()).trim(), origin: 'sample', sampleFile: d.file };
    }));
  })();
  corpusPromise.catch(() => { corpusPromise = null; });
  return corpusPromise;
}

/** The pasted text (and its title) into the index. */
export function addPasted() {
  show($('index-msg'), '');
  if (!guardIndexing()) return;
  const text = $('paste-text').value;
  if (!text.trim()) { show($('index-msg'), 'Paste or type some text first.', 'warn'); return; }
  if (text.length > MAX_TEXT) { show($('index-msg'), `The pasted text has ${fmtInt(text.length)} characters; up to ${fmtInt(MAX_TEXT)} can be added at once.`); return; }
  const name = $('paste-title').value.trim() || text.trim().split('\n')[0].slice(0, 60);
  indexItems([{ name, text, origin: 'paste' }]).then(() => { $('paste-text').value = ''; $('paste-title').value = ''; });
}

/** The sample corpus documents not in the index yet into it. */
export async function addSample() {
  show($('index-msg'), '');
  if (!guardIndexing()) return;
  let docs;
  try { docs = await sampleCorpus(); } catch (e) { show($('index-msg'), `The sample corpus could not be read: ${e.message}`); return; }
  const have = new Set(state.docs.filter(d => d.origin === 'sample').map(d => d.name));
  const fresh = docs.filter(d => !have.has(d.name)).map(d => ({ ...d }));
  if (!fresh.length) { show($('index-msg'), 'The sample corpus is already in the index.', 'info'); return; }
  indexItems(fresh);
}

/** What the sample corpus holds, beside its button. */
export function showSampleInfo() {
  sampleCorpus().then(d => { $('sample-info').textContent = `${d.length} documents in ${new Set(d.map(x => x.lang)).size} languages${sampleSummary ? ` · ${sampleSummary}` : ''}`; }).catch(() => {});
}

// ── Indexing ──────────────────────────────────────────────────────────────────────────────────
/** Encodes `items` ({ name, text, origin, lang? }) and adds them; one job at a time. */
function indexItems(items, opts = {}) {
  const job = state.queue.then(() => runIndexing(items, opts));
  state.queue = job.catch(() => {});
  return job;
}

/** Save groups of `items`: at most SAVE_GROUP_DOCS documents and SAVE_GROUP_CHARS characters
 *  (`chars(item)`), a longer document alone. */
function saveGroups(items, chars) {
  const groups = [];
  let cur = [], curChars = 0;
  for (const it of items) {
    if (cur.length && (cur.length >= SAVE_GROUP_DOCS || curChars + chars(it) > SAVE_GROUP_CHARS)) { groups.push(cur); cur = []; curChars = 0; }
    cur.push(it); curChars += chars(it);
  }
  if (cur.length) groups.push(cur);
  return groups;
}

/** The indexing job. `reindex`: { colbert } — every document of the index again, with the loaded
 *  model, into a staging index with that ColBERT option (items then carry id, meta and no text:
 *  the text is read from the index a group at a time). */
async function runIndexing(items, { keepMessage = false, reindex = null } = {}) {
  const model = state.model;
  if (!model) return;
  if (!reindex) {
    const empty = items.filter(i => !i.text.trim());
    items = items.filter(i => i.text.trim());
    if (empty.length && !keepMessage) show($('index-msg'), `Skipped ${empty.map(i => `“${i.name}”`).join(', ')}: no text in ${empty.length > 1 ? 'them' : 'it'}.`, 'warn');
    else if (!keepMessage) show($('index-msg'), '');
  } else show($('index-msg'), '');
  if (!items.length) return;
  const ac = new AbortController();
  state.indexing = ac;
  state.reindexing = !!reindex;
  setReady();
  const box = $('indexing'), bar = $('indexing-bar'), label = $('indexing-label'), stats = $('indexing-stats');
  box.hidden = false;
  $('index-cancel').hidden = false;
  document.body.dataset.indexing = 'yes';
  bar.value = 0;
  label.textContent = `Reading ${plural(items.length, 'document')}…`;
  stats.textContent = '';
  const t0 = performance.now();
  const n = items.length, docsWord = `document${n > 1 ? 's' : ''}`;
  const verb = reindex ? 'Re-indexing' : 'Indexing';
  let docsDone = 0, tokensDone = 0, staging = null;
  try {
    // The documents go to the model a save group at a time (windows and batches are the
    // package's business: one encode per group); each group is one add, whole or not at all.
    // A re-index adds to a staging index, which becomes the index only when all are in it.
    let target;
    if (reindex) {
      staging = await beginStaging(state.fingerprint, reindex.colbert);
      target = staging.index;
    } else target = await ensureIndex();
    const groups = saveGroups(items, it => it.chars ?? it.text.length);
    const totalChars = items.reduce((s, i) => s + (i.chars ?? i.text.length), 0) || 1;
    let charsDone = 0;
    const update = (groupChars = 0, p = null) => {
      const done = tokensDone + (p?.tokensDone ?? 0);
      const secs = (performance.now() - t0) / 1000;
      bar.value = (charsDone + groupChars * (p ? p.tokensDone / Math.max(1, p.tokens) : 0)) / totalChars;
      label.textContent = `${verb}: ${docsDone} / ${n} documents`;
      stats.textContent = `${fmtInt(done)} tokens · ${fmtInt(done / Math.max(secs, 1e-3))} tokens/s · ${(docsDone / Math.max(secs, 1e-3)).toFixed(docsDone / secs >= 10 ? 0 : 1)} documents/s`;
    };
    update();
    for (const group of groups) {
      const texts = reindex ? await Promise.all(group.map(async it => (await state.index.getWindow(it.id, 0))?.text ?? '')) : group.map(i => i.text);
      const groupChars = texts.reduce((s, t) => s + t.length, 0);
      const embs = await model.encode(texts, {
        colbertSpans: true, signal: ac.signal, maxLength: Math.min(model.maxTokens, MAX_WINDOW_TOKENS),
        onProgress: p => update(groupChars, p),
      });
      ac.signal.throwIfAborted();
      const added = group.map((it, k) => toItem(it, texts[k], embs[k]));
      await target.add(added, { signal: ac.signal });
      if (!reindex) {
        const byId = new Map(state.docs.map(d => [d.id, d]));
        for (const a of added) byId.set(a.id, docEntry({ id: a.id, meta: a.meta, windows: a.embedding.windows.length }));
        state.docs = [...byId.values()].sort((a, b) => a.addedAt - b.addedAt);
        renderDocs(); renderStats();
      }
      tokensDone += group.reduce((s, it, k) => s + embs[k].inputIds.length - 2, 0);
      charsDone += groupChars;
      docsDone += group.length;
      update();
    }
    ac.signal.throwIfAborted();
    if (reindex) {
      await staging.commit(state.index);
      state.index = staging.index;
      staging = null;
      state.colbert = reindex.colbert;
      await refreshDocs();
      renderAll();
    }
    checkFingerprint();
    askPersist();
    const secs = (performance.now() - t0) / 1000;
    label.textContent = `${reindex ? 'Re-indexed' : 'Indexed'} ${n} ${docsWord} (${fmtInt(tokensDone)} tokens) in ${secs.toFixed(1)} s`;
    stats.textContent = `${fmtInt(tokensDone / Math.max(secs, 1e-3))} tokens/s on ${state.model.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}`;
    document.body.dataset.indexed = String(state.docs.length);
    if (state.last) await rescoreLast();
  } catch (e) {
    if (staging) await staging.discard().catch(() => {}); // else left for dropLeftovers on the next start
    let kept;
    if (reindex) kept = `The index keeps its ${plural(n, 'document')} as they were (${reindex.why}): ${reindex.why === 'made with the other model' ? 're-index again to search' : 're-index again to change it'}.`;
    else if (!docsDone) kept = `None of the ${n} ${docsWord} ${n > 1 ? 'were' : 'was'} added; the index is as it was before.`;
    else kept = `The first ${plural(docsDone, 'document')} ${docsDone > 1 ? 'were' : 'was'} added (each save group is stored whole); the other ${n - docsDone} ${n - docsDone > 1 ? 'were' : 'was'} not.`;
    label.textContent = isAbort(e) ? `Cancelled after ${docsDone} of ${n} ${docsWord}.` : `${verb} stopped after ${docsDone} of ${n} ${docsWord}.`;
    stats.textContent = kept;
    if (!isAbort(e)) {
      const what = reindex ? `the index is as it was before (${plural(n, 'document')})` : docsDone ? `the ${plural(docsDone, 'document')} added before it stay in the index (${plural(state.docs.length, 'document')} in all)` : null;
      const failed = !reindex && docsDone ? `${verb} the other ${plural(n - docsDone, 'document')}` : `${verb} ${n} ${docsWord}`;
      show($('index-msg'), await writeFailure(failed, e, what));
    }
  } finally {
    state.indexing = null;
    state.reindexing = false;
    $('index-cancel').hidden = true;
    document.body.dataset.indexing = 'no';
    setReady();
    renderStats();
    renderStorage();
  }
}

/** An item of the index's `add`: the text, the encoding, and what the list shows as meta. */
function toItem(item, text, emb) {
  const name = item.name.length > MAX_NAME ? item.name.slice(0, MAX_NAME - 1) + '…' : item.name;
  return {
    id: item.id ?? crypto.randomUUID(),
    text,
    meta: { name, lang: item.lang ?? null, origin: item.origin ?? 'paste', tokens: emb.inputIds.length - 2, addedAt: item.addedAt ?? Date.now() },
    embedding: emb,
  };
}

/** Every document of the index encoded again with the loaded model, into a new index with ColBERT
 *  option `colbert` (default: the index's): after a model change, or to change the option. */
export function reindexAll(colbert = state.index?.stats().options.colbert ?? state.colbert) {
  if (!state.model || !state.index) return;
  const why = state.mismatch ? 'made with the other model' : `with ColBERT “${state.index.stats().options.colbert}”`;
  const items = state.docs.map(d => ({ id: d.id, name: d.name, lang: d.lang, origin: d.origin, addedAt: d.addedAt, chars: Math.max(1, d.tokens * 4) }));
  const wasMismatch = state.mismatch;
  state.mismatch = false; // allow the job; restored by checkFingerprint if it fails
  $('mismatch').hidden = true;
  return indexItems(items, { reindex: { colbert, why } }).finally(() => {
    if (wasMismatch) checkFingerprint();
  });
}
