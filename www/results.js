// Step 3, search: the query encoded by the model and searched in the package's index
// (`index.search`: candidates from the dense lane and the lexical postings, reranked exactly,
// documents by their best window), the weights and fusion controls (a change searches again with
// the same encoded query), the time of each stage, the hits (per-mode bars, snippet with the
// lexical matches, the whole window: `index.getWindow`) and the ColBERT alignment heatmap (the
// window's stored rows, dequantized, against the query's).
import { DEFAULT_WEIGHTS, RRF_K } from '../pkg/src/index.js';
import { state } from './state.js';
import { $, el, show, fmtInt, fmtScore } from './ui.js';
import { lexicalMatches, tokenMarks, snippetRange, alignment, prettyToken, rowSpan, tokenRows } from './search.js';

const SHOWN = 10;
/** Most documents a search returns (the index's k): "show all" shows these. */
const MAX_HITS = 200;
const MODES = ['dense', 'sparse', 'colbert'];

// ── Weights ───────────────────────────────────────────────────────────────────────────────────
/** The sliders start at the package's default weights (a value the browser restored on a reload
 *  stays), and the reset button names them. */
export function initWeights() {
  for (const k of MODES) $(`w-${k}`).defaultValue = String(DEFAULT_WEIGHTS[k]);
  $('w-reset').textContent = `Reset ${MODES.map(k => DEFAULT_WEIGHTS[k]).join(' / ')}`;
  renderWeights();
}

export function resetWeights() {
  for (const k of MODES) $(`w-${k}`).value = DEFAULT_WEIGHTS[k];
  reweigh();
}

function weights() {
  return { dense: +$('w-dense').value, sparse: +$('w-sparse').value, colbert: +$('w-colbert').value };
}

function renderWeights() {
  const w = weights(), rrf = $('rrf').checked;
  for (const k of MODES) $(`w-${k}-v`).textContent = w[k].toFixed(2);
  const sum = w.dense + w.sparse + w.colbert;
  $('fusion-help').textContent = rrf
    ? `Reciprocal-rank fusion: each document gets Σ 1/(${RRF_K} + rank) over the rankings by ${MODES.filter(k => w[k] > 0).map(k => ({ dense: 'dense', sparse: 'lexical', colbert: 'ColBERT' })[k]).join(', ') || 'no score'} (modes with weight 0 left out). Ranks, not score scales, decide.`
    : `Score = (${w.dense.toFixed(2)}·dense + ${w.sparse.toFixed(2)}·lexical + ${w.colbert.toFixed(2)}·ColBERT) / ${sum.toFixed(2)}, as FlagEmbedding's compute_score; each document is scored by its best window.`;
}

// ── Search ────────────────────────────────────────────────────────────────────────────────────
export async function runSearch() {
  show($('search-msg'), '');
  const query = $('query').value.trim();
  if (!query) { show($('search-msg'), 'Type a question or a few words to search for.', 'warn'); $('query').focus(); return; }
  if (!state.model) { show($('search-msg'), 'Load the model first (step 1): the query is turned into vectors by the same model as the documents.'); return; }
  if (state.mismatch || state.reindexing) { show($('search-msg'), state.reindexing ? 'Re-indexing is running: search when it is done.' : 'The index was made with another model: re-index it (step 2) to search.'); return; }
  if (!state.index || !state.docs.length) { show($('search-msg'), 'The index is empty: add documents or the sample corpus first (step 2).', 'warn'); return; }
  $('search').disabled = true;
  document.body.dataset.searching = 'yes';
  try {
    const t0 = performance.now();
    const emb = await state.model.encode(query, { tokenStrings: true, colbertSpans: true });
    const qTokens = await state.model.idsToTokens(emb.inputIds);
    state.last = { query, emb, qTokens, encodeMs: performance.now() - t0, result: null };
    state.showAll = false;
    await searchIndex();
  } catch (e) {
    show($('search-msg'), `The search failed: ${e?.message ?? e}`);
  } finally {
    $('search').disabled = !state.model;
    document.body.dataset.searching = 'no';
  }
}

/** Searches the last query again, against the index as it is now (after a change of the index). */
export async function rescoreLast() {
  if (!state.last || state.mismatch || state.reindexing) return;
  if (!state.index || !state.docs.length) { state.last = null; renderResults(); return; }
  await searchIndex();
}

/** The index search of the last encoded query with the weights and fusion shown; then the hits
 *  are rendered. Answers of an older call (sliders moved meanwhile) are dropped. */
async function searchIndex() {
  const seq = ++state.searchSeq;
  const stats = $('search-stats');
  stats.dataset.asked = String(seq); // `done` follows once this search's hits are shown
  renderWeights();
  const w = weights(), rrf = $('rrf').checked;
  if (!(w.dense + w.sparse + w.colbert > 0)) {
    // Decided here (the index would refuse it too): no ranking without a weight.
    show($('search-msg'), 'Give at least one of dense, lexical or ColBERT a weight above 0.', 'warn');
    state.last.result = null;
    $('results').textContent = '';
    stats.textContent = '';
    stats.dataset.done = String(seq);
    return;
  }
  const t0 = performance.now();
  const result = await state.index.search(state.last.emb, { k: MAX_HITS, weights: w, rrf });
  const searchMs = performance.now() - t0;
  // The windows shown: their text, tokens and stored vectors (dequantized), read once per hit.
  const shown = result.hits.slice(0, state.showAll ? MAX_HITS : SHOWN);
  const windows = await Promise.all(shown.map(h => state.index.getWindow(h.id, h.window.index)));
  if (seq !== state.searchSeq) return;
  show($('search-msg'), '');
  state.last.result = { ...result, searchMs, windows, weights: w, rrf };
  renderResults();
  stats.dataset.done = String(seq);
}

/** A slider or the fusion switch moved: the same query, searched again. */
export function reweigh() {
  renderWeights();
  if (state.last && state.index && !state.mismatch && !state.reindexing) {
    searchIndex().catch(e => { show($('search-msg'), `The search failed: ${e?.message ?? e}`); $('search-stats').dataset.done = $('search-stats').dataset.asked; });
  }
}

// ── Hits ──────────────────────────────────────────────────────────────────────────────────────
const STAGES = [['dense', 'dense lane'], ['sparse', 'lexical postings'], ['read', 'reading candidates'], ['colbert', 'ColBERT MaxSim']];

export function renderResults() {
  renderWeights();
  const list = $('results');
  list.textContent = '';
  $('empty-state').hidden = !!state.last;
  const r = state.last?.result;
  if (!r) { $('search-stats').textContent = ''; return; }
  const { emb, qTokens, encodeMs } = state.last;
  const s = state.index.stats();
  const stats = $('search-stats');
  stats.textContent = '';
  stats.dataset.encodeMs = String(encodeMs);
  for (const [k] of STAGES) stats.dataset[`${k}Ms`] = String(r.timings[k]);
  stats.dataset.totalMs = String(r.timings.total);
  stats.dataset.candidates = String(r.candidates);
  stats.dataset.colbert = r.colbert;
  const colbertNote = { stored: '', off: ' ColBERT weight 0: not computed.', skipped: ' ColBERT is not stored in this index (created with ColBERT “none”): its weight is left out.', reencoded: '' }[r.colbert];
  stats.append(
    el('p', { text: `${r.hits.length} document${r.hits.length === 1 ? '' : 's'} ranked in ${fmtInt(encodeMs + r.timings.total)} ms — query encoded in ${fmtInt(encodeMs)} ms, searched in ${r.timings.total.toFixed(1)} ms over ${fmtInt(s.windows)} windows (${fmtInt(r.candidates)} candidates reranked), all on this device.${colbertNote}` }),
    el('p', { class: 'stages', text: `Index stages: ${STAGES.map(([k, label]) => `${label} ${r.timings[k].toFixed(1)} ms`).join(' · ')}` }));
  const hits = r.hits;
  const shown = hits.slice(0, r.windows.length);
  const maxSparse = Math.max(1, ...hits.map(h => h.sparse ?? 0));
  shown.forEach((h, i) => { if (r.windows[i]) list.append(renderHit(h, r.windows[i], i, { emb, qTokens, maxSparse, rrf: r.rrf })); });
  if (!state.showAll && hits.length > shown.length) {
    list.append(el('li', { class: 'more' }, el('button', { class: 'ghost', onclick: () => { state.showAll = true; searchIndex(); } }, `Show all ${hits.length} results`)));
  }
}

function bar(kind, label, value, scale) {
  const fill = el('span', { class: 'fill' });
  if (value == null) {
    // Not computed (ColBERT weight 0, or not stored): an empty bar, no number.
    return el('div', { class: `bar ${kind} off`, title: `${label}: not computed for this search` },
      el('span', { class: 'bar-label', text: label }), el('span', { class: 'track' }, fill), el('span', { class: 'bar-val', text: '–' }));
  }
  fill.style.width = `${Math.max(0, Math.min(1, value / scale)) * 100}%`;
  return el('div', { class: `bar ${kind}`, title: `${label} score ${value.toFixed(4)}` },
    el('span', { class: 'bar-label', text: label }), el('span', { class: 'track' }, fill), el('span', { class: 'bar-val', text: fmtScore(value) }));
}

/** One hit: `h` the index's hit, `got` its best window as `index.getWindow` reads it (text, meta,
 *  window with inputIds, colbertSpans, sparse and the dequantized ColBERT rows). */
function renderHit(h, got, i, { emb, qTokens, maxSparse, rrf }) {
  const w = got.window, text = got.text, meta = got.meta ?? {};
  const name = typeof meta.name === 'string' ? meta.name : h.id;
  const lang = typeof meta.lang === 'string' ? meta.lang : '';
  const nWindows = state.docs.find(d => d.id === h.id)?.windows ?? 1;
  const rows = tokenRows(w); // [T - 1, dim] per token, or null (ColBERT not stored)
  const matches = lexicalMatches(emb, w);
  const contrib = new Map(matches.map(m => [m.id, m.contribution]));
  const marks = tokenMarks(w, contrib);
  let focus = null;
  if (!marks.length && rows) {
    // No shared tokens: show where ColBERT aligns best.
    const a = alignment(emb.colbert.data, rows, emb.dense.length);
    let bi = 0;
    for (let k = 0; k < a.qRows - 1; k++) if (a.bestSim[k] > a.bestSim[bi]) bi = k;
    focus = rowSpan(w, a.best[bi])[0];
  }
  const [s0, s1] = snippetRange(text, w, marks, m => contrib.get(m.id), focus);
  const snippet = el('blockquote', { class: 'snippet', lang });
  appendMarked(snippet, text, s0, s1, marks, contrib, { lead: s0 > 0, tail: s1 < text.length });
  const where = nWindows > 1
    ? `Best window ${h.window.index + 1} of ${nWindows}: characters ${fmtInt(w.start)}–${fmtInt(w.end)} of ${fmtInt(text.length)} (tokens ${fmtInt(w.tokenStart)}–${fmtInt(w.tokenEnd)})`
    : `Whole document: characters 0–${fmtInt(text.length)}, ${fmtInt(meta.tokens ?? w.tokenEnd - w.tokenStart)} tokens`;
  const alignBox = el('div', { class: 'align', hidden: true });
  const fullBox = el('div', { class: 'fulltext', hidden: true, lang });
  const alignBtn = el('button', { class: 'small', 'aria-expanded': 'false', disabled: !rows, title: rows ? null : 'This index keeps no ColBERT rows (created with ColBERT “none”)', onclick: () => {
    const open = alignBox.hidden;
    alignBox.hidden = !open;
    alignBtn.setAttribute('aria-expanded', String(open));
    if (open && !alignBox.firstChild) renderAlignment(alignBox, emb, qTokens, text, w, rows);
  } }, 'ColBERT alignment');
  const fullBtn = el('button', { class: 'small ghost', 'aria-expanded': 'false', onclick: () => {
    const open = fullBox.hidden;
    fullBox.hidden = !open;
    fullBtn.setAttribute('aria-expanded', String(open));
    if (open && !fullBox.firstChild) appendMarked(fullBox, text, w.start, w.end, marks, contrib, {});
  } }, nWindows > 1 ? 'Show the whole window' : 'Show the whole document');
  const chips = matches.length
    ? el('div', { class: 'matches' }, el('span', { class: 'muted small', text: 'Lexical matches (query weight × document weight):' }),
      ...matches.slice(0, 12).map(m => el('span', { class: 'token-chip', title: `token ${m.token} (id ${m.id}): ${m.q.toFixed(3)} × ${m.p.toFixed(3)} = ${m.contribution.toFixed(4)}` },
        el('b', { text: prettyToken(m.token) }), ` ${m.q.toFixed(2)}×${m.p.toFixed(2)}`)))
    : el('div', { class: 'matches muted small', text: 'No query token appears in this window: it was found by meaning (dense, ColBERT).' });
  const num = v => (v == null ? '' : String(v));
  return el('li', { class: 'hit', dataset: { id: h.id, name, window: h.window.index, score: h.score, hybrid: h.hybrid, dense: num(h.dense), sparse: num(h.sparse), colbert: num(h.colbert) } },
    el('div', { class: 'hit-head' },
      el('span', { class: 'rank', text: String(i + 1) }),
      el('h3', { class: 'hit-title', text: name }),
      lang ? el('span', { class: 'lang', text: lang }) : null,
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

// ── ColBERT alignment ─────────────────────────────────────────────────────────────────────────
// One row per query token; a heat strip of its ColBERT similarity along the window's tokens, and
// the passage token it matched best.
const PLASMA = [[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]];
function heat(t) {
  t = Math.max(0, Math.min(1, t)) * (PLASMA.length - 1);
  const i = Math.min(PLASMA.length - 2, Math.floor(t)), f = t - i;
  const c = PLASMA[i].map((v, k) => Math.round(v + (PLASMA[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** `rows`: the window's ColBERT row of each token (tokenRows), as the index stores them (int8,
 *  dequantized; pooled rows repeated for the tokens they stand for). */
function renderAlignment(box, emb, qTokens, text, w, rows) {
  const dim = emb.dense.length;
  const a = alignment(emb.colbert.data, rows, dim);
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
    while (ps < pe && /\s/.test(text[ps])) ps++;
    const isEnd = bj === a.pRows - 1;
    const ctxText = isEnd ? el('span', { class: 'muted', text: '</s> (end of window)' }) : el('span', {},
      el('span', { class: 'muted', text: (ps > 0 ? '…' : '') + text.slice(Math.max(0, ps - 24), ps).replace(/\s+/g, ' ') }),
      el('mark', { class: 'align-mark', text: text.slice(ps, pe) }),
      el('span', { class: 'muted', text: text.slice(pe, pe + 24).replace(/\s+/g, ' ') + '…' }));
    const cell = el('td', { class: 'sim' }, el('span', { class: 'swatch' }), ` ${a.bestSim[i].toFixed(3)}`);
    cell.firstChild.style.background = heat(norm(a.bestSim[i]));
    tbody.append(el('tr', {}, el('th', { scope: 'row', class: 'qtok', text: qTok }), el('td', {}, canvas), el('td', { class: 'best' }, ctxText), cell));
  }
  table.append(tbody);
  box.append(el('div', { class: 'table-wrap' }, table));
}
