// Step 2, documents in: files (text and HTML, checked and decoded here), pasted text and the
// sample corpus; the indexing job (save groups of documents through the model, each document stored
// as a record with the vectors of its windows); re-indexing with the loaded model.
import * as store from './db.js';
import { state } from './state.js';
import { $, show, fmtBytes, fmtInt, isAbort } from './ui.js';
import { setReady, checkFingerprint } from './model-panel.js';
import { renderDocs, renderStorage, askPersist, writeFailure } from './storage.js';
import { MAX_WINDOW_TOKENS, MAX_TEXT, MAX_NAME } from './index-file.js';
import { rescoreLast } from './results.js';

const TEXT_EXTENSIONS = new Set(['txt', 'md', 'markdown', 'html', 'htm', 'xhtml', 'csv', 'tsv', 'json', 'xml', 'rst', 'tex', 'log', 'org', 'adoc', 'srt', 'vtt', 'yaml', 'yml']);
const MAX_FILE_BYTES = 50 * 1024 * 1024;
/** A save group: the documents encoded together and written to IndexedDB at once (the page holds
 *  their vectors until then). Not a batch: the package batches windows by its own rules. */
const SAVE_GROUP_DOCS = 32;
const SAVE_GROUP_CHARS = 200_000;

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
/** Encodes `items` ({ name, text, origin, lang?, id?, addedAt? }) and stores them; one job at a time. */
function indexItems(items, opts = {}) {
  const job = state.queue.then(() => runIndexing(items, opts));
  state.queue = job.catch(() => {});
  return job;
}

async function runIndexing(items, { keepMessage = false, reindex = false } = {}) {
  const model = state.model;
  if (!model) return;
  const empty = items.filter(i => !i.text.trim());
  items = items.filter(i => i.text.trim());
  if (empty.length && !keepMessage) show($('index-msg'), `Skipped ${empty.map(i => `“${i.name}”`).join(', ')}: no text in ${empty.length > 1 ? 'them' : 'it'}.`, 'warn');
  else if (!keepMessage) show($('index-msg'), '');
  if (!items.length) return;
  const ac = new AbortController();
  state.indexing = ac;
  setReady();
  const box = $('indexing'), bar = $('indexing-bar'), label = $('indexing-label'), stats = $('indexing-stats');
  box.hidden = false;
  $('index-cancel').hidden = false;
  state.reindexing = reindex;
  document.body.dataset.indexing = 'yes';
  bar.value = 0;
  label.textContent = `Reading ${items.length} document${items.length > 1 ? 's' : ''}…`;
  stats.textContent = '';
  const t0 = performance.now();
  const n = items.length, docsWord = `document${n > 1 ? 's' : ''}`;
  let docsDone = 0, tokensDone = 0, run = null;
  try {
    // The run's records are written under a generation of their own (db.js) and become the index
    // only when all of them are written: a failure or a cancel leaves the index as it was.
    run = await store.beginRun();
    // Documents go to the model in save groups: what the page holds before writing the records to
    // IndexedDB. Windows and batches are the package's business (one encode per group); progress
    // comes from it in tokens, the bar moves by characters across groups.
    const groups = [];
    let cur = [], curChars = 0;
    for (const it of items) {
      if (cur.length && (cur.length >= SAVE_GROUP_DOCS || curChars + it.text.length > SAVE_GROUP_CHARS)) { groups.push(cur); cur = []; curChars = 0; }
      cur.push(it); curChars += it.text.length;
    }
    if (cur.length) groups.push(cur);
    const totalChars = items.reduce((s, i) => s + i.text.length, 0) || 1;
    let charsDone = 0;
    const update = (groupChars = 0, p = null) => {
      const done = tokensDone + (p?.tokensDone ?? 0);
      const secs = (performance.now() - t0) / 1000;
      bar.value = (charsDone + groupChars * (p ? p.tokensDone / Math.max(1, p.tokens) : 0)) / totalChars;
      label.textContent = `${reindex ? 'Re-indexing' : 'Indexing'}: ${docsDone} / ${n} documents`;
      stats.textContent = `${fmtInt(done)} tokens · ${fmtInt(done / Math.max(secs, 1e-3))} tokens/s · ${(docsDone / Math.max(secs, 1e-3)).toFixed(docsDone / secs >= 10 ? 0 : 1)} documents/s`;
    };
    update();
    const records = [];
    for (const group of groups) {
      const groupChars = group.reduce((s, i) => s + i.text.length, 0);
      const embs = await model.encode(group.map(i => i.text), {
        colbertSpans: true, signal: ac.signal, maxLength: Math.min(model.maxTokens, MAX_WINDOW_TOKENS),
        onProgress: p => update(groupChars, p),
      });
      ac.signal.throwIfAborted();
      records.push(...await run.put(group.map((it, k) => toRecord(it, embs[k]))));
      tokensDone += group.reduce((s, it, k) => s + embs[k].inputIds.length - 2, 0);
      charsDone += groupChars;
      docsDone += group.length;
      update();
    }
    ac.signal.throwIfAborted();
    await run.commit({ fingerprint: state.fingerprint, replaceAll: reindex });
    run = null;
    if (reindex) state.docs = records;
    else {
      const byId = new Map(state.docs.map(d => [d.id, d]));
      for (const r of records) byId.set(r.id, r);
      state.docs = [...byId.values()];
    }
    state.docs.sort((a, b) => a.addedAt - b.addedAt);
    if (reindex || !state.indexFingerprint) state.indexFingerprint = state.fingerprint;
    renderDocs();
    checkFingerprint();
    askPersist();
    const secs = (performance.now() - t0) / 1000;
    label.textContent = `${reindex ? 'Re-indexed' : 'Indexed'} ${n} ${docsWord} (${fmtInt(tokensDone)} tokens) in ${secs.toFixed(1)} s`;
    stats.textContent = `${fmtInt(tokensDone / Math.max(secs, 1e-3))} tokens/s on ${state.model.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}`;
    document.body.dataset.indexed = String(state.docs.length);
    if (state.last) await rescoreLast();
  } catch (e) {
    if (run) await run.discard().catch(() => {}); // else left for the clean-up on the next start
    const kept = reindex
      ? `The index keeps its ${state.docs.length} document${state.docs.length === 1 ? '' : 's'} as they were (made with the other model): re-index again to search.`
      : `None of the ${n} ${docsWord} ${n > 1 ? 'were' : 'was'} added; the index is as it was before.`;
    if (isAbort(e)) {
      label.textContent = `Cancelled after ${docsDone} of ${n} ${docsWord}.`;
      stats.textContent = kept;
    } else {
      label.textContent = `${reindex ? 'Re-indexing' : 'Indexing'} stopped after ${docsDone} of ${n} ${docsWord}.`;
      stats.textContent = kept;
      show($('index-msg'), await writeFailure(`${reindex ? 'Re-indexing' : 'Indexing'} ${n} ${docsWord}`, e));
    }
  } finally {
    state.indexing = null;
    state.reindexing = false;
    $('index-cancel').hidden = true;
    document.body.dataset.indexing = 'no';
    setReady();
    renderStorage();
  }
}

/** A stored document: its text and, per window, the vectors (own copies of the typed arrays). */
function toRecord(item, emb) {
  return {
    id: item.id ?? crypto.randomUUID(),
    name: item.name.length > MAX_NAME ? item.name.slice(0, MAX_NAME - 1) + '…' : item.name,
    lang: item.lang ?? null,
    origin: item.origin ?? 'paste',
    text: item.text,
    tokens: emb.inputIds.length - 2, // content tokens of the whole text
    addedAt: item.addedAt ?? Date.now(),
    windows: emb.windows.map(w => ({
      start: w.start, end: w.end, tokenStart: w.tokenStart, tokenEnd: w.tokenEnd,
      inputIds: w.inputIds.slice(),
      dense: w.dense.slice(),
      sparse: { ids: w.sparse.ids.slice(), weights: w.sparse.weights.slice() },
      colbert: { data: w.colbert.data.slice(), rows: w.colbert.rows, dim: w.colbert.dim },
      colbertSpans: w.colbertSpans.slice(),
    })),
  };
}

/** Every stored document encoded again with the loaded model (their text is stored). */
export function reindexAll() {
  if (!state.model) return;
  const items = state.docs.map(d => ({ id: d.id, name: d.name, text: d.text, lang: d.lang, origin: d.origin, addedAt: d.addedAt }));
  state.mismatch = false; // allow the job; restored by checkFingerprint if cancelled
  $('mismatch').hidden = true;
  indexItems(items, { reindex: true }).finally(() => {
    if (state.indexFingerprint !== state.fingerprint) { state.mismatch = true; checkFingerprint(); }
  });
}
