// Step 4, the scale test: a separate index in page memory (the package's `openIndex` with storage
// 'memory', never IndexedDB, never the person's index) of N synthetic windows shaped like
// BGE-M3's (scripts/index-synth.mjs: dense unit vectors at the loaded model's width, ~150 lexical
// weights per window, documents of 4 windows; no ColBERT rows: at 1024 dimensions, 100,000
// windows of 512 tokens would take 52 GB), searched with the person's query encoded by the real
// model. It shows what the index costs at that size: build time, page memory, bytes per lane, and
// the time of each search stage. The index is deleted when the test ends.
import { openIndex, deleteIndex, DEFAULT_WEIGHTS } from '../pkg/src/index.js';
import { state } from './state.js';
import { $, el, show, fmtBytes, fmtInt, isAbort } from './ui.js';
import { setReady } from './model-panel.js';

/** Window counts offered. */
export const SCALE_SIZES = [10_000, 50_000, 100_000];
const NAME = 'bge-m3-demo scale test (synthetic)';
/** Documents per add() (each a few windows): the page stays responsive between them. */
const CHUNK_DOCS = 256;
/** Timed searches (after one warm-up); the median of each stage is shown. */
const RUNS = 5;
const FALLBACK_QUERY = 'How do I keep a sourdough starter alive in the fridge?';
const STAGES = [['dense', 'dense lane (every window)'], ['sparse', 'lexical postings'], ['read', 'reading candidates'], ['colbert', 'ColBERT'], ['total', 'search in all']];

// The generator is fetched when the page starts (not on the click: nothing is fetched once the
// model is loaded). It lives with the index's benchmark (scripts/), served beside www/.
let synth = null;
export function prefetchSynth() {
  synth ??= import('../scripts/index-synth.mjs');
  synth.catch(() => {});
}

const median = xs => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export function cancelScaleTest() {
  state.scaleTest?.abort();
}

export async function runScaleTest() {
  const out = $('scale-out'), bar = $('scale-bar'), msg = $('scale-msg');
  show(msg, '');
  if (!state.model) { show(msg, 'Load the model first (step 1): the test searches with a query it encodes.'); return; }
  if (state.scaleTest) return;
  const n = Number($('scale-n').value);
  if (!SCALE_SIZES.includes(n)) return;
  let gen;
  try { gen = await synth; } catch (e) { show(msg, `The synthetic generator (scripts/index-synth.mjs) could not be loaded here: ${e.message}`); return; }
  const ac = new AbortController();
  state.scaleTest = ac;
  setReady();
  $('scale-cancel').hidden = false;
  document.body.dataset.scale = 'running';
  bar.hidden = false;
  bar.value = 0;
  out.textContent = '';
  try {
    const query = $('query').value.trim() || FALLBACK_QUERY;
    const q = await state.model.encode(query, { colbert: false });
    const r = await scaleRun(gen, { n, fingerprint: state.fingerprint, query: q, signal: ac.signal, onProgress: done => {
      bar.value = done / n;
      out.textContent = `Building: ${fmtInt(done)} of ${fmtInt(n)} synthetic windows…`;
    } });
    renderScale(out, { ...r, n, dim: state.fingerprint.dim, query });
  } catch (e) {
    out.textContent = '';
    show(msg, isAbort(e) ? 'The scale test was cancelled.' : `The scale test failed: ${e?.message ?? e}`, isAbort(e) ? 'info' : 'error');
  } finally {
    state.scaleTest = null;
    bar.hidden = true;
    $('scale-cancel').hidden = true;
    document.body.dataset.scale = 'done';
    setReady();
  }
}

/** The test itself, without the page: builds the memory index of `n` synthetic windows (the
 *  generator `gen`, at `fingerprint.dim`), searches it with `query` (an encode() result: dense and
 *  sparse) RUNS times after a warm-up, deletes it. Returns { stats, t (median ms per stage),
 *  genMs, addMs, candidates, hits }. */
export async function scaleRun(gen, { n, fingerprint, query, signal, onProgress }) {
  const corpus = gen.makeCorpus({ seed: 1, windows: n, dim: fingerprint.dim });
  const per = gen.WINDOWS_PER_DOC;
  await deleteIndex(NAME, { storage: 'memory' });
  const index = await openIndex(NAME, { storage: 'memory', fingerprint, colbert: 'none' });
  try {
    let genMs = 0, addMs = 0;
    for (let d0 = 0; d0 < corpus.docs; d0 += CHUNK_DOCS) {
      signal?.throwIfAborted();
      const t0 = performance.now();
      const items = [];
      for (let d = d0; d < Math.min(corpus.docs, d0 + CHUNK_DOCS); d++) items.push(synthDoc(corpus, d, per, n));
      const t1 = performance.now();
      await index.add(items, { signal });
      genMs += t1 - t0;
      addMs += performance.now() - t1;
      onProgress?.(Math.min(n, (d0 + CHUNK_DOCS) * per));
      await new Promise(r => setTimeout(r, 0));
    }
    // One warm-up search, then RUNS timed ones (ColBERT not stored: dense and lexical weights).
    const weights = { dense: DEFAULT_WEIGHTS.dense, sparse: DEFAULT_WEIGHTS.sparse, colbert: 0 };
    const runs = [];
    let last;
    for (let i = 0; i <= RUNS; i++) {
      signal?.throwIfAborted();
      last = await index.search(query, { k: 10, weights });
      if (i) runs.push(last.timings);
      await new Promise(r => setTimeout(r, 0));
    }
    const t = Object.fromEntries(STAGES.map(([k]) => [k, median(runs.map(r => r[k]))]));
    return { stats: index.stats(), t, genMs, addMs, candidates: last.candidates, hits: last.hits };
  } finally {
    index.close();
    await deleteIndex(NAME, { storage: 'memory' }).catch(() => {});
  }
}

/** Synthetic document `d`: windows d·per … of the corpus (the last document may be short), each
 *  with its dense vector and lexical weights; its tokens are its lexical ids (<s> … </s>). */
function synthDoc(corpus, d, per, n) {
  const text = `Synthetic document ${d}`;
  const windows = [];
  let tok = 0;
  for (let w = d * per; w < Math.min(n, (d + 1) * per); w++) {
    const sp = corpus.sparse(w);
    const inputIds = new Uint32Array(sp.ids.length + 2);
    inputIds.set(sp.ids, 1);
    inputIds[inputIds.length - 1] = 2;
    windows.push({ start: 0, end: text.length, tokenStart: tok, tokenEnd: tok + sp.ids.length, inputIds, dense: corpus.dense(w), sparse: { ids: sp.ids, weights: sp.weights } });
    tok += sp.ids.length;
  }
  return { id: `synthetic-${d}`, text, meta: { synthetic: true }, embedding: { windows } };
}

function renderScale(out, { n, dim, query, stats, t, genMs, addMs, candidates, hits }) {
  out.textContent = '';
  out.dataset.windows = String(stats.windows);
  out.dataset.memory = String(stats.memoryBytes);
  for (const [k] of STAGES) out.dataset[`${k}Ms`] = String(t[k]);
  const b = stats.bytes;
  out.append(
    el('p', { class: 'synthetic-note', text: `Synthetic data — not your documents, never stored, deleted now. ${fmtInt(stats.windows)} windows in ${fmtInt(stats.documents)} documents, ${dim}-dimensional (the loaded model's width), searched with your query “${query}” as the model encodes it.` }),
    el('table', { class: 'lanes small' },
      el('tbody', {},
        el('tr', {}, el('th', { scope: 'row', text: 'Built in' }), el('td', { class: 'num', text: `${((genMs + addMs) / 1000).toFixed(1)} s` }), el('td', { class: 'muted', text: `generating ${(genMs / 1000).toFixed(1)} s, index add ${(addMs / 1000).toFixed(1)} s (${fmtInt(stats.windows / Math.max(addMs / 1000, 1e-3))} windows/s)` })),
        el('tr', {}, el('th', { scope: 'row', text: 'Page memory' }), el('td', { class: 'num', text: fmtBytes(stats.memoryBytes) }), el('td', { class: 'muted', text: 'the dense lane and the lexical postings (what any index of this size holds)' })),
        el('tr', {}, el('th', { scope: 'row', text: 'Records' }), el('td', { class: 'num', text: fmtBytes(b.total) }), el('td', { class: 'muted', text: `dense ${fmtBytes(b.dense)} · lexical ${fmtBytes(b.sparse)} · tokens ${fmtBytes(b.tokens)} · text ${fmtBytes(b.text + b.docs)} (in memory here; IndexedDB for your index)` })),
        ...STAGES.map(([k, label]) => el('tr', { dataset: { stage: k } }, el('th', { scope: 'row', text: label }), el('td', { class: 'num', text: `${t[k].toFixed(1)} ms` }), el('td', { class: 'muted', text: k === 'total' ? `median of ${RUNS} searches, ${fmtInt(candidates)} candidates reranked, top 10 documents` : k === 'colbert' ? 'no ColBERT rows in the synthetic windows' : `median of ${RUNS}` }))))),
    el('p', { class: 'muted small', text: `Top synthetic hits: ${hits.slice(0, 3).map(h => `${h.id} (${h.score.toFixed(3)})`).join(', ')}. The previous version of this page ranked every window in f32 in page memory (~4 KB per token at 1024 dimensions: ${fmtBytes(n * 512 * 1024 * 4)} for ${fmtInt(n)} windows of 512 tokens).` }));
}
