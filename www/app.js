// The demo page: load BGE-M3, index your documents into IndexedDB, search them with hybrid scores.
// Plain ES modules, no build step. Everything runs in this tab (the model in a Web Worker).
import { load, clearCache, HF_BGE_M3 } from '../pkg/src/index.js';
import * as store from './db.js';
import { scoreWindows, rank, lexicalMatches, tokenMarks, snippetRange, alignment, prettyToken, rowSpan, toMap, DEFAULT_WEIGHTS, RRF_K } from './search.js';

const $ = id => document.getElementById(id);
const params = new URLSearchParams(location.search);
const PROBE_TEXT = 'BGE-M3 index fingerprint · Fingerabdruck · empreinte · 指纹 · отпечаток';
const TEXT_EXTENSIONS = new Set(['txt', 'md', 'markdown', 'html', 'htm', 'xhtml', 'csv', 'tsv', 'json', 'xml', 'rst', 'tex', 'log', 'org', 'adoc', 'srt', 'vtt', 'yaml', 'yml']);
const MAX_FILE_BYTES = 50 * 1024 * 1024;
const SHOWN = 10;

const state = {
  model: null,          // the loaded model
  modelLabel: '',       // where it came from, in words
  fingerprint: null,    // of the loaded model
  indexFingerprint: null, // stored with the index
  docs: [],
  mismatch: false,
  loading: null,        // AbortController while loading
  indexing: null,       // AbortController while indexing
  queue: Promise.resolve(),
  last: null,           // { query, emb, qTokens, scored }
  showAll: false,
  loadedAt: null,       // performance.now() when the model finished loading
  requestsAfterLoad: [],
};

// ── Small helpers ─────────────────────────────────────────────────────────────────────────────
const nf = new Intl.NumberFormat('en');
const fmtInt = n => nf.format(Math.round(n));
function fmtBytes(b) {
  if (b == null) return '?';
  const u = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
  return `${b.toFixed(i === 0 || b >= 100 ? 0 : 1)} ${u[i]}`;
}
const fmtScore = x => (Number.isFinite(x) ? x.toFixed(3) : '–');
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, '');
    else if (v !== false && v != null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c != null) e.append(c);
  return e;
}
function show(node, message, kind = 'error') {
  if (!message) { node.hidden = true; node.textContent = ''; return; }
  node.hidden = false;
  node.className = `msg ${kind}`;
  node.textContent = message;
}
const isAbort = e => e?.name === 'AbortError';

// ── Privacy: count the page's network requests after the model is loaded ───────────────────────
function watchNetwork() {
  if (typeof PerformanceObserver === 'undefined') return;
  new PerformanceObserver(list => {
    if (state.loadedAt == null) return;
    for (const e of list.getEntries()) {
      if (e.startTime >= state.loadedAt && !e.name.startsWith('blob:') && !e.name.startsWith('data:')) state.requestsAfterLoad.push(e.name);
    }
    renderPrivacy();
  }).observe({ type: 'resource', buffered: false });
}
function renderPrivacy() {
  const box = $('privacy'), text = $('privacy-text');
  if (state.loadedAt == null) {
    box.className = 'privacy';
    text.textContent = 'Nothing is uploaded. The page only talks to the model host.';
    return;
  }
  const n = state.requestsAfterLoad.length;
  box.className = n ? 'privacy bad' : 'privacy ok';
  text.textContent = n
    ? `${n} network request${n > 1 ? 's' : ''} since the model loaded: ${state.requestsAfterLoad.slice(-3).join(', ')}`
    : 'Offline from here on: 0 network requests since the model loaded. Your text stays on this device.';
}

// ── Model ─────────────────────────────────────────────────────────────────────────────────────
function selectedSource() {
  const kind = document.querySelector('input[name=source]:checked').value;
  if (kind === 'hf') return { kind, source: HF_BGE_M3, label: 'Hugging Face BAAI/bge-m3' };
  if (kind === 'url') {
    const raw = $('source-url').value.trim();
    if (!raw) throw new Error('Type the base URL of the model files (the folder holding config.json, tokenizer.json, pytorch_model.bin, …).');
    let url;
    try { url = new URL(raw, location.href); } catch { throw new Error(`“${raw}” is not a URL.`); }
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    return { kind, source: url.href, label: url.origin === location.origin ? url.pathname : url.href };
  }
  const files = [...$('source-folder').files];
  if (!files.length) throw new Error('Pick the folder that holds the model files (config.json, tokenizer.json, pytorch_model.bin or model.safetensors, colbert_linear.pt, sparse_linear.pt).');
  const names = new Set(files.map(f => f.name));
  const missing = ['config.json', 'tokenizer.json', 'colbert_linear.pt', 'sparse_linear.pt'].filter(n => !names.has(n));
  if (!names.has('pytorch_model.bin') && !names.has('model.safetensors')) missing.push('pytorch_model.bin (or model.safetensors)');
  if (missing.length) throw new Error(`The picked folder has no ${missing.join(', ')}. Pick the folder of a BAAI/bge-m3 download.`);
  const wanted = new Set(['config.json', 'tokenizer.json', 'colbert_linear.pt', 'sparse_linear.pt', names.has('pytorch_model.bin') ? 'pytorch_model.bin' : 'model.safetensors']);
  const folder = (files[0].webkitRelativePath || files[0].name).split('/')[0];
  return { kind, source: files.filter(f => wanted.has(f.name)), label: `folder “${folder}” on this computer`,
    encoderFile: names.has('pytorch_model.bin') ? 'pytorch_model.bin' : 'model.safetensors' };
}

/** Whether the package's Cache API copy of the model at `base` is there (then loading needs no download). */
async function isCached(base) {
  if (typeof caches === 'undefined') return false;
  try {
    const c = await caches.open('bge-m3-web');
    const needed = ['config.json', 'tokenizer.json', 'colbert_linear.pt', 'sparse_linear.pt', 'pytorch_model.bin'];
    for (const n of needed) if (!(await c.match(new URL(n, base).href))) return false;
    return true;
  } catch { return false; }
}

const fileRows = new Map();
function progressRow(p) {
  let row = fileRows.get(p.file);
  if (!row) {
    const bar = el('progress', { max: 1, value: 0, 'aria-label': `${p.file} progress` });
    const info = el('span', { class: 'file-info' });
    const li = el('li', { class: 'file', dataset: { file: p.file } }, el('span', { class: 'file-name', text: p.file === 'model' ? 'building the model' : p.file }), bar, info);
    $('files').append(li);
    row = { li, bar, info, t0: performance.now(), samples: [] };
    fileRows.set(p.file, row);
  }
  const now = performance.now();
  row.li.dataset.phase = p.phase;
  if (p.phase === 'build') {
    row.bar.max = p.total || 1; row.bar.value = p.loaded;
    row.info.textContent = `layer ${p.loaded} / ${p.total}`;
    return;
  }
  if (p.phase === 'cache') {
    row.bar.max = 1; row.bar.value = 1;
    row.info.textContent = `${fmtBytes(p.loaded)} · from the browser cache, no download`;
    return;
  }
  row.samples.push([now, p.loaded]);
  while (row.samples.length > 2 && now - row.samples[0][0] > 3000) row.samples.shift();
  const [t0, b0] = row.samples[0];
  const rate = now > t0 ? ((p.loaded - b0) / (now - t0)) * 1000 : 0;
  if (p.total) { row.bar.max = p.total; row.bar.value = p.loaded; } else row.bar.removeAttribute('value');
  const finished = p.total != null && p.loaded >= p.total;
  const avg = p.loaded / Math.max(1e-3, (now - row.t0) / 1000);
  row.info.textContent = `${fmtBytes(p.loaded)}${p.total ? ' / ' + fmtBytes(p.total) : ''} · ${fmtBytes(finished ? avg : rate)}/s${finished ? ' · downloaded' : ''}`;
}

async function loadModel({ auto = false } = {}) {
  if (state.loading) return;
  show($('model-msg'), '');
  let src;
  try { src = selectedSource(); } catch (e) { show($('model-msg'), e.message); return; }
  const device = $('device').value;
  const ac = new AbortController();
  state.loading = ac;
  $('load').disabled = true; $('load-cancel').hidden = false;
  $('files').textContent = ''; fileRows.clear();
  $('backend').hidden = true;
  setReady();
  if (state.model) { const old = state.model; state.model = null; state.loadedAt = null; renderPrivacy(); old.dispose().catch(() => {}); }
  show($('model-msg'), auto ? `Loading the cached model from ${src.label} — no download needed.` : `Loading from ${src.label}…`, 'info');
  try {
    const model = await load(src.source, { device, signal: ac.signal, onProgress: progressRow, ...(src.encoderFile ? { encoderFile: src.encoderFile } : {}) });
    const probe = await model.encode(PROBE_TEXT, { sparse: false, colbert: false });
    state.model = model;
    state.modelLabel = src.label;
    state.fingerprint = { hiddenSize: model.hiddenSize, probe: probe.dense.slice(), source: src.label, probeText: PROBE_TEXT, createdAt: Date.now() };
    if (src.kind !== 'folder') localStorage.setItem('bge-m3-demo:source', JSON.stringify({ kind: src.kind, url: src.source }));
    state.loadedAt = performance.now();
    state.requestsAfterLoad = [];
    renderPrivacy();
    renderBackend(device);
    show($('model-msg'), `Ready: ${model.hiddenSize}-dimensional vectors, up to ${fmtInt(model.maxTokens)} tokens per window. Loaded from ${src.label}.`, 'ok');
    checkFingerprint();
  } catch (e) {
    show($('model-msg'), isAbort(e) ? 'Loading cancelled.' : explainLoadError(e, src, device));
  } finally {
    state.loading = null;
    $('load').disabled = false; $('load-cancel').hidden = true;
    setReady();
  }
}

function explainLoadError(e, src, device) {
  const m = e?.message ?? String(e);
  if (/WebGPU is not available/i.test(m)) return `This browser offers no WebGPU adapter, so “WebGPU only” cannot run. Choose “WebGPU if available, else CPU” to use the CPU fallback. (${m})`;
  if (/HTTP 404/.test(m)) return `A model file is missing: ${m}. Check that ${src.label} holds the BAAI/bge-m3 files (config.json, tokenizer.json, pytorch_model.bin, colbert_linear.pt, sparse_linear.pt).`;
  if (/HTTP \d+/.test(m)) return `The model host answered with an error: ${m}.`;
  if (/could not fetch|network error|Failed to fetch/i.test(m)) return `The model host could not be reached — are you offline, or does the host block this page (CORS)? Only huggingface.co and this site are allowed by the page's security policy. (${m})`;
  if (/truncated/i.test(m)) return `A model file is incomplete (interrupted download or damaged file): ${m}. Load again to download it anew.`;
  if (/lack|missing/i.test(m)) return `Model files are missing: ${m}.`;
  if (/memory|allocation|OutOfMemory/i.test(m)) return `The device ran out of memory loading the model${device !== 'cpu' ? ' (try the CPU, or close other tabs)' : ''}: ${m}`;
  return `The model could not be loaded: ${m}`;
}

function renderBackend(device) {
  const m = state.model, box = $('backend');
  box.hidden = false;
  box.textContent = '';
  const gpu = m.backend === 'webgpu';
  box.className = `backend ${gpu ? 'gpu' : 'cpu'}`;
  box.dataset.backend = m.backend;
  box.append(el('span', { class: 'chip', text: gpu ? 'WebGPU' : 'CPU' }), ' ', el('span', { class: 'adapter', text: m.adapter }));
  let note = '';
  if (!gpu && device === 'cpu') note = 'Running on the CPU (WebAssembly), as chosen.';
  else if (!gpu && !('gpu' in navigator)) note = 'This browser has no WebGPU, so the model runs on the CPU (WebAssembly): it works, only slower. Chrome, Edge and recent Safari have WebGPU.';
  else if (!gpu) note = 'No WebGPU adapter could be opened (blocked GPU or driver), so the model runs on the CPU (WebAssembly): it works, only slower.';
  if (note) box.append(el('p', { class: 'small', text: note }));
}

function setReady() {
  const ready = !!state.model && !state.loading;
  for (const id of ['sample', 'paste-add', 'search']) $(id).disabled = !ready || (id !== 'search' && state.mismatch);
  $('drop').classList.toggle('disabled', !ready || state.mismatch);
  $('reindex').disabled = !ready || !!state.indexing;
  document.body.dataset.model = ready ? 'ready' : state.loading ? 'loading' : 'none';
}

// ── Fingerprint: vectors from another model can't be compared ─────────────────────────────────
function cosine(a, b) {
  if (!a || !b || a.length !== b.length) return -1;
  let s = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { s += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return s / Math.sqrt(na * nb || 1);
}
const sameModel = (a, b) => a.hiddenSize === b.hiddenSize && cosine(a.probe, b.probe) > 0.999;

function checkFingerprint() {
  const fp = state.fingerprint, ix = state.indexFingerprint;
  state.mismatch = !!(fp && ix && state.docs.length && !sameModel(fp, ix));
  $('mismatch').hidden = !state.mismatch;
  document.body.dataset.mismatch = state.mismatch ? 'yes' : 'no';
  if (state.mismatch) {
    $('mismatch-text').textContent = `This index was built with a different model (${ix.hiddenSize}-dimensional, from ${ix.source}) than the one loaded now (${fp.hiddenSize}-dimensional, from ${fp.source}). Their vectors can't be compared, so search is off. Re-index the ${state.docs.length} document${state.docs.length > 1 ? 's' : ''} with this model (their text is stored), or clear the index.`;
  }
  setReady();
}

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

async function addFiles(fileList) {
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
  let docsDone = 0;
  try {
    // Token counts first, for a progress bar in tokens.
    for (const it of items) {
      const tok = await model.tokenize(it.text);
      it.tokens = tok.ids.length - 2;
      ac.signal.throwIfAborted();
    }
    const totalTokens = items.reduce((s, i) => s + i.tokens, 0) || 1;
    // Short documents go in batches; a long one (several windows) alone.
    const batches = [];
    let cur = [], curTokens = 0;
    for (const it of items) {
      if (cur.length && (cur.length >= 16 || curTokens + it.tokens > 8192)) { batches.push(cur); cur = []; curTokens = 0; }
      cur.push(it); curTokens += it.tokens;
    }
    if (cur.length) batches.push(cur);
    let tokensDone = 0;
    const update = extra => {
      const done = tokensDone + extra;
      const secs = (performance.now() - t0) / 1000;
      bar.value = done / totalTokens;
      label.textContent = `${reindex ? 'Re-indexing' : 'Indexing'}: ${docsDone} / ${items.length} documents`;
      stats.textContent = `${fmtInt(done)} / ${fmtInt(totalTokens)} tokens · ${fmtInt(done / Math.max(secs, 1e-3))} tokens/s · ${(docsDone / Math.max(secs, 1e-3)).toFixed(docsDone / secs >= 10 ? 0 : 1)} documents/s`;
    };
    update(0);
    for (const batch of batches) {
      const batchTokens = batch.reduce((s, i) => s + i.tokens, 0);
      const embs = await model.encode(batch.map(i => i.text), {
        colbertSpans: true, signal: ac.signal,
        onProgress: p => update(batchTokens * (p.tokensDone / Math.max(1, p.tokens))),
      });
      const records = batch.map((it, k) => toRecord(it, embs[k]));
      await store.putDocs(records);
      if (!state.indexFingerprint) { state.indexFingerprint = state.fingerprint; await store.setMeta('fingerprint', state.fingerprint); }
      for (const r of records) {
        const at = state.docs.findIndex(d => d.id === r.id);
        if (at >= 0) state.docs[at] = r; else state.docs.push(r);
      }
      tokensDone += batchTokens;
      docsDone += batch.length;
      update(0);
      renderDocs();
    }
    if (reindex) {
      state.indexFingerprint = state.fingerprint;
      await store.setMeta('fingerprint', state.fingerprint);
      checkFingerprint();
    }
    const secs = (performance.now() - t0) / 1000;
    label.textContent = `${reindex ? 'Re-indexed' : 'Indexed'} ${items.length} document${items.length > 1 ? 's' : ''} (${fmtInt(tokensDone)} tokens) in ${secs.toFixed(1)} s`;
    stats.textContent = `${fmtInt(tokensDone / Math.max(secs, 1e-3))} tokens/s on ${state.model.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}`;
    document.body.dataset.indexed = String(state.docs.length);
    if (state.last) await rescoreLast();
  } catch (e) {
    if (isAbort(e)) {
      label.textContent = `Cancelled: ${docsDone} of ${items.length} document${items.length > 1 ? 's were' : ' was'} indexed.`;
      stats.textContent = reindex ? 'The rest keep their old vectors; re-index again to finish.' : 'The others were not added.';
    } else {
      label.textContent = 'Indexing stopped.';
      show($('index-msg'), `Indexing failed: ${e?.message ?? e}`);
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
    name: item.name,
    lang: item.lang ?? null,
    origin: item.origin ?? 'paste',
    text: item.text,
    tokens: item.tokens,
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

// ── Index list, export/import ─────────────────────────────────────────────────────────────────
function renderDocs() {
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

async function clearIndex() {
  state.indexing?.abort();
  await store.clearAll();
  state.docs = [];
  state.indexFingerprint = null;
  state.last = null;
  renderDocs(); checkFingerprint(); renderResults(); renderStorage();
  show($('index-msg'), 'The index is empty.', 'info');
}

async function renderStorage() {
  if (!navigator.storage?.estimate) return;
  const { usage, quota } = await navigator.storage.estimate();
  $('storage').textContent = `Stored in this browser (index and cached model): ${fmtBytes(usage)} of ${fmtBytes(quota)} available.`;
}

function exportIndexFile() {
  if (!state.docs.length) { show($('index-msg'), 'The index is empty: nothing to export.', 'warn'); return; }
  const blob = store.exportIndex(state.indexFingerprint, state.docs);
  const a = el('a', { href: URL.createObjectURL(blob), download: `bge-m3-index-${new Date().toISOString().slice(0, 10)}.m3index` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  show($('index-msg'), `Exported ${state.docs.length} documents (${fmtBytes(blob.size)}).`, 'ok');
}

async function importIndexFile(file) {
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

// ── Search ────────────────────────────────────────────────────────────────────────────────────
function weights() {
  return { dense: +$('w-dense').value, sparse: +$('w-sparse').value, colbert: +$('w-colbert').value };
}

async function runSearch() {
  show($('search-msg'), '');
  const query = $('query').value.trim();
  if (!query) { show($('search-msg'), 'Type a question or a few words to search for.', 'warn'); $('query').focus(); return; }
  if (!state.model) { show($('search-msg'), 'Load the model first (step 1): the query is turned into vectors by the same model as the documents.'); return; }
  if (state.mismatch || state.reindexing) { show($('search-msg'), state.reindexing ? 'Re-indexing is running: search when it is done.' : 'The index was made with another model: re-index it (step 2) to search.'); return; }
  if (!state.docs.length) { show($('search-msg'), 'The index is empty: add documents or the sample corpus first (step 2).', 'warn'); return; }
  $('search').disabled = true;
  document.body.dataset.searching = 'yes';
  try {
    const t0 = performance.now();
    const emb = await state.model.encode(query, { tokenStrings: true, colbertSpans: true });
    const qTokens = await state.model.idsToTokens(emb.inputIds);
    const encodeMs = performance.now() - t0;
    const t1 = performance.now();
    const scored = scoreWindows(emb, state.docs);
    state.last = { query, emb, qTokens, scored, encodeMs, scoreMs: performance.now() - t1 };
    state.showAll = false;
    renderResults();
  } catch (e) {
    show($('search-msg'), `The search failed: ${e?.message ?? e}`);
  } finally {
    $('search').disabled = !state.model;
    document.body.dataset.searching = 'no';
  }
}

async function rescoreLast() {
  if (!state.last || state.mismatch || state.reindexing) return;
  state.last.scored = scoreWindows(state.last.emb, state.docs);
  renderResults();
}

function renderWeights() {
  const w = weights(), rrf = $('rrf').checked;
  for (const k of ['dense', 'sparse', 'colbert']) $(`w-${k}-v`).textContent = w[k].toFixed(2);
  const sum = w.dense + w.sparse + w.colbert;
  $('fusion-help').textContent = rrf
    ? `Reciprocal-rank fusion: each document gets Σ 1/(${RRF_K} + rank) over the rankings by ${['dense', 'sparse', 'colbert'].filter(k => w[k] > 0).map(k => ({ dense: 'dense', sparse: 'lexical', colbert: 'ColBERT' })[k]).join(', ') || 'no score'} (modes with weight 0 left out). Ranks, not score scales, decide.`
    : `Score = (${w.dense.toFixed(2)}·dense + ${w.sparse.toFixed(2)}·lexical + ${w.colbert.toFixed(2)}·ColBERT) / ${sum.toFixed(2)}, as FlagEmbedding's compute_score; each document is scored by its best window.`;
}

function renderResults() {
  renderWeights();
  const list = $('results');
  list.textContent = '';
  $('empty-state').hidden = !!state.last;
  if (!state.last) { $('search-stats').textContent = ''; return; }
  const { emb, qTokens, scored, encodeMs, scoreMs } = state.last;
  const w = weights(), rrf = $('rrf').checked;
  let hits;
  try { hits = rank(scored, w, { rrf }); } catch (e) { show($('search-msg'), e.message, 'warn'); $('search-stats').textContent = ''; return; }
  show($('search-msg'), '');
  const windows = scored.reduce((s, x) => s + x.windows.length, 0);
  $('search-stats').textContent = `${hits.length} document${hits.length === 1 ? '' : 's'} (${windows} windows) ranked in ${fmtInt(encodeMs + scoreMs)} ms — query encoded in ${fmtInt(encodeMs)} ms, scored in ${fmtInt(scoreMs)} ms, all on this device.`;
  const shown = state.showAll ? hits : hits.slice(0, SHOWN);
  const maxSparse = Math.max(1, ...hits.map(h => h.sparse));
  const qSparse = toMap(emb.sparse);
  shown.forEach((h, i) => list.append(renderHit(h, i, { emb, qTokens, qSparse, maxSparse, rrf })));
  if (!state.showAll && hits.length > SHOWN) {
    list.append(el('li', { class: 'more' }, el('button', { class: 'ghost', onclick: () => { state.showAll = true; renderResults(); } }, `Show all ${hits.length} results`)));
  }
}

function bar(kind, label, value, scale) {
  const fill = el('span', { class: 'fill' });
  fill.style.width = `${Math.max(0, Math.min(1, value / scale)) * 100}%`;
  return el('div', { class: `bar ${kind}`, title: `${label} score ${value.toFixed(4)}` },
    el('span', { class: 'bar-label', text: label }), el('span', { class: 'track' }, fill), el('span', { class: 'bar-val', text: fmtScore(value) }));
}

function renderHit(h, i, { emb, qTokens, qSparse, maxSparse, rrf }) {
  const doc = h.doc, w = doc.windows[h.window];
  const matches = lexicalMatches(emb, w);
  const contrib = new Map(matches.map(m => [m.id, m.contribution]));
  const marks = tokenMarks(w, contrib);
  let focus = null;
  if (!marks.length) {
    // No shared tokens: show where ColBERT aligns best.
    const a = alignment(emb.colbert.data, w.colbert.data, emb.dense.length);
    let bi = 0;
    for (let k = 0; k < a.qRows - 1; k++) if (a.bestSim[k] > a.bestSim[bi]) bi = k;
    focus = rowSpan(w, a.best[bi])[0];
  }
  const [s0, s1] = snippetRange(doc.text, w, marks, m => contrib.get(m.id), focus);
  const snippet = el('blockquote', { class: 'snippet', lang: doc.lang ?? '' });
  appendMarked(snippet, doc.text, s0, s1, marks, contrib, { lead: s0 > 0, tail: s1 < doc.text.length });
  const where = doc.windows.length > 1
    ? `Best window ${h.window + 1} of ${doc.windows.length}: characters ${fmtInt(w.start)}–${fmtInt(w.end)} of ${fmtInt(doc.text.length)} (tokens ${fmtInt(w.tokenStart)}–${fmtInt(w.tokenEnd)})`
    : `Whole document: characters 0–${fmtInt(doc.text.length)}, ${fmtInt(doc.tokens)} tokens`;
  const alignBox = el('div', { class: 'align', hidden: true });
  const fullBox = el('div', { class: 'fulltext', hidden: true, lang: doc.lang ?? '' });
  const alignBtn = el('button', { class: 'small', 'aria-expanded': 'false', onclick: () => {
    const open = alignBox.hidden;
    alignBox.hidden = !open;
    alignBtn.setAttribute('aria-expanded', String(open));
    if (open && !alignBox.firstChild) renderAlignment(alignBox, emb, qTokens, doc, w);
  } }, 'ColBERT alignment');
  const fullBtn = el('button', { class: 'small ghost', 'aria-expanded': 'false', onclick: () => {
    const open = fullBox.hidden;
    fullBox.hidden = !open;
    fullBtn.setAttribute('aria-expanded', String(open));
    if (open && !fullBox.firstChild) appendMarked(fullBox, doc.text, w.start, w.end, marks, contrib, {});
  } }, doc.windows.length > 1 ? 'Show the whole window' : 'Show the whole document');
  const chips = matches.length
    ? el('div', { class: 'matches' }, el('span', { class: 'muted small', text: 'Lexical matches (query weight × document weight):' }),
      ...matches.slice(0, 12).map(m => el('span', { class: 'token-chip', title: `token ${m.token} (id ${m.id}): ${m.q.toFixed(3)} × ${m.p.toFixed(3)} = ${m.contribution.toFixed(4)}` },
        el('b', { text: prettyToken(m.token) }), ` ${m.q.toFixed(2)}×${m.p.toFixed(2)}`)))
    : el('div', { class: 'matches muted small', text: 'No query token appears in this window: it was found by meaning (dense, ColBERT).' });
  return el('li', { class: 'hit', dataset: { id: doc.id, name: doc.name, window: h.window, score: h.score, hybrid: h.hybrid, dense: h.dense, sparse: h.sparse, colbert: h.colbert } },
    el('div', { class: 'hit-head' },
      el('span', { class: 'rank', text: String(i + 1) }),
      el('h3', { class: 'hit-title', text: doc.name }),
      doc.lang ? el('span', { class: 'lang', text: doc.lang }) : null,
      el('span', { class: 'score', title: rrf ? 'Reciprocal-rank fusion score' : 'Hybrid score (weighted)' }, el('small', { text: rrf ? 'RRF ' : 'score ' }), fmtScore(h.score))),
    el('div', { class: 'bars' }, bar('dense', 'Dense', h.dense, 1), bar('sparse', 'Lexical', h.sparse, maxSparse), bar('colbert', 'ColBERT', h.colbert, 1)),
    el('p', { class: 'where muted small', text: where }),
    snippet, chips,
    el('div', { class: 'actions' }, alignBtn, fullBtn),
    alignBox, fullBox);
}

/** Appends text[s0, s1) to `node` with the lexical matches as <mark>s. */
function appendMarked(node, text, s0, s1, marks, contrib, { lead, tail }) {
  if (lead) node.append('… ');
  let at = s0;
  for (const m of marks) {
    let start = m.start;
    while (start < m.end && /\s/.test(text[start])) start++; // tokens carry their leading space
    if (m.end <= s0 || start >= s1 || start < at || start >= m.end) continue;
    node.append(text.slice(at, start));
    node.append(el('mark', { title: `lexical weight ${contrib.get(m.id).toFixed(4)}`, text: text.slice(start, Math.min(m.end, s1)) }));
    at = Math.min(m.end, s1);
  }
  node.append(text.slice(at, s1));
  if (tail) node.append(' …');
}

// The alignment view: one row per query token; a heat strip of its ColBERT similarity along the
// window's tokens, and the passage token it matched best.
const PLASMA = [[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]];
function heat(t) {
  t = Math.max(0, Math.min(1, t)) * (PLASMA.length - 1);
  const i = Math.min(PLASMA.length - 2, Math.floor(t)), f = t - i;
  const c = PLASMA[i].map((v, k) => Math.round(v + (PLASMA[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function renderAlignment(box, emb, qTokens, doc, w) {
  const dim = emb.dense.length;
  const a = alignment(emb.colbert.data, w.colbert.data, dim);
  let lo = Infinity, hi = -Infinity;
  for (const s of a.sims) { if (s < lo) lo = s; if (s > hi) hi = s; }
  const norm = s => (hi > lo ? (s - lo) / (hi - lo) : 1);
  const bins = Math.min(a.pRows, 160);
  box.append(el('p', { class: 'small muted', text: `Each query token's ColBERT vector against the ${fmtInt(a.pRows)} token vectors of this window (left to right, colour = similarity, ${lo.toFixed(2)} to ${hi.toFixed(2)}); the ColBERT score is the mean of the best matches (${fmtScore(a.bestSim.reduce((s, x) => s + x, 0) / a.qRows)}).` }));
  const table = el('table', { class: 'align-table' },
    el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Query token' }), el('th', { scope: 'col', text: 'Along the window' }), el('th', { scope: 'col', text: 'Best passage token' }), el('th', { scope: 'col', text: 'Similarity' }))));
  const tbody = el('tbody');
  for (let i = 0; i < a.qRows; i++) {
    const qTok = i === a.qRows - 1 ? '</s>' : prettyToken(qTokens[i + 1]);
    const canvas = el('canvas', { width: bins, height: 1, class: 'strip', 'aria-hidden': 'true' });
    const ctx = canvas.getContext('2d');
    for (let b = 0; b < bins; b++) {
      const j0 = Math.floor((b * a.pRows) / bins), j1 = Math.max(j0 + 1, Math.floor(((b + 1) * a.pRows) / bins));
      let m = -Infinity;
      for (let j = j0; j < j1; j++) m = Math.max(m, a.sims[i * a.pRows + j]);
      ctx.fillStyle = heat(norm(m));
      ctx.fillRect(b, 0, 1, 1);
    }
    const bj = a.best[i];
    let [ps, pe] = rowSpan(w, bj);
    while (ps < pe && /\s/.test(doc.text[ps])) ps++;
    const isEnd = bj === a.pRows - 1;
    const ctxText = isEnd ? el('span', { class: 'muted', text: '</s> (end of window)' }) : el('span', {},
      el('span', { class: 'muted', text: (ps > 0 ? '…' : '') + doc.text.slice(Math.max(0, ps - 24), ps).replace(/\s+/g, ' ') }),
      el('mark', { class: 'align-mark', text: doc.text.slice(ps, pe) }),
      el('span', { class: 'muted', text: doc.text.slice(pe, pe + 24).replace(/\s+/g, ' ') + '…' }));
    const cell = el('td', { class: 'sim' }, el('span', { class: 'swatch' }), ` ${a.bestSim[i].toFixed(3)}`);
    cell.firstChild.style.background = heat(norm(a.bestSim[i]));
    tbody.append(el('tr', {}, el('th', { scope: 'row', class: 'qtok', text: qTok }), el('td', {}, canvas), el('td', { class: 'best' }, ctxText), cell));
  }
  table.append(tbody);
  box.append(el('div', { class: 'table-wrap' }, table));
}

// ── Wiring ────────────────────────────────────────────────────────────────────────────────────
function applyParams() {
  const saved = JSON.parse(localStorage.getItem('bge-m3-demo:source') || 'null');
  const model = params.get('model');
  const url = model ?? (saved?.kind === 'url' ? saved.url : null);
  if (url && url !== 'hf' && url !== HF_BGE_M3) {
    document.querySelector('input[name=source][value=url]').checked = true;
    $('source-url').value = url;
  }
  const device = params.get('device');
  if (device && ['auto', 'webgpu', 'cpu'].includes(device)) $('device').value = device;
  if (!('gpu' in navigator) && $('device').value === 'auto') {
    $('device').options[0].textContent = 'CPU (this browser has no WebGPU)';
  }
}

async function start() {
  watchNetwork();
  applyParams();
  renderWeights();
  $('load').addEventListener('click', () => loadModel());
  $('load-cancel').addEventListener('click', () => state.loading?.abort());
  $('clear-cache').addEventListener('click', async () => {
    const had = await clearCache();
    show($('model-msg'), had ? 'The downloaded model files were removed from this browser.' : 'No downloaded model files were stored.', 'info');
    renderStorage();
  });
  $('source-url').addEventListener('focus', () => { document.querySelector('input[name=source][value=url]').checked = true; });
  $('source-folder').addEventListener('change', () => { document.querySelector('input[name=source][value=folder]').checked = true; });

  const drop = $('drop');
  drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', e => { e.preventDefault(); drop.classList.remove('over'); addFiles([...e.dataTransfer.files]); });
  drop.addEventListener('keydown', e => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('pick').click(); } });
  $('pick').addEventListener('change', e => { addFiles([...e.target.files]); e.target.value = ''; });
  $('paste-add').addEventListener('click', () => {
    show($('index-msg'), '');
    if (!guardIndexing()) return;
    const text = $('paste-text').value;
    if (!text.trim()) { show($('index-msg'), 'Paste or type some text first.', 'warn'); return; }
    const name = $('paste-title').value.trim() || text.trim().split('\n')[0].slice(0, 60);
    indexItems([{ name, text, origin: 'paste' }]).then(() => { $('paste-text').value = ''; $('paste-title').value = ''; });
  });
  $('sample').addEventListener('click', async () => {
    show($('index-msg'), '');
    if (!guardIndexing()) return;
    let docs;
    try { docs = await sampleCorpus(); } catch (e) { show($('index-msg'), `The sample corpus could not be read: ${e.message}`); return; }
    const have = new Set(state.docs.filter(d => d.origin === 'sample').map(d => d.name));
    const fresh = docs.filter(d => !have.has(d.name)).map(d => ({ ...d }));
    if (!fresh.length) { show($('index-msg'), 'The sample corpus is already in the index.', 'info'); return; }
    indexItems(fresh);
  });
  $('index-cancel').addEventListener('click', () => state.indexing?.abort());
  $('reindex').addEventListener('click', () => {
    if (!state.model) return;
    const items = state.docs.map(d => ({ id: d.id, name: d.name, text: d.text, lang: d.lang, origin: d.origin, addedAt: d.addedAt }));
    state.mismatch = false; // allow the job; restored by checkFingerprint if cancelled
    $('mismatch').hidden = true;
    indexItems(items, { reindex: true }).finally(() => {
      if (state.indexFingerprint !== state.fingerprint) { state.mismatch = true; checkFingerprint(); }
    });
  });
  $('mismatch-clear').addEventListener('click', clearIndex);
  $('clear-index').addEventListener('click', clearIndex);
  $('export').addEventListener('click', exportIndexFile);
  $('import').addEventListener('change', e => { const f = e.target.files[0]; e.target.value = ''; if (f) importIndexFile(f); });

  $('search-form').addEventListener('submit', e => { e.preventDefault(); runSearch(); });
  for (const k of ['dense', 'sparse', 'colbert']) $(`w-${k}`).addEventListener('input', renderResults);
  $('rrf').addEventListener('change', renderResults);
  $('w-reset').addEventListener('click', () => {
    for (const k of ['dense', 'sparse', 'colbert']) $(`w-${k}`).value = DEFAULT_WEIGHTS[k];
    renderResults();
  });

  // The index from earlier visits.
  try {
    state.docs = await store.allDocs();
    state.indexFingerprint = (await store.getMeta('fingerprint')) ?? null;
  } catch (e) {
    show($('index-msg'), `This browser's storage could not be opened (private mode?), so the index will not survive a reload: ${e.message}`, 'warn');
  }
  renderDocs();
  renderStorage();
  if (state.docs.length) show($('index-msg'), `${state.docs.length} document${state.docs.length > 1 ? 's' : ''} restored from this browser's storage.`, 'info');
  setReady();
  sampleCorpus().then(d => { $('sample-info').textContent = `${d.length} documents in ${new Set(d.map(x => x.lang)).size} languages${sampleSummary ? ` · ${sampleSummary}` : ''}`; }).catch(() => {});
  document.body.dataset.started = 'yes';

  // A model this browser has downloaded before loads by itself (from the cache, no download).
  let src = null;
  try { src = selectedSource(); } catch { /* no URL yet */ }
  if (src && src.kind !== 'folder' && (await isCached(src.source))) loadModel({ auto: true });
}

start();
