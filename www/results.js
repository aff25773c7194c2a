// Step 3, search: the query against the index, the weights and fusion controls, the hits (per-mode
// bars, snippet with the lexical matches, the whole window) and the ColBERT alignment heatmap.
import { DEFAULT_WEIGHTS, RRF_K } from '../pkg/src/index.js';
import { state } from './state.js';
import { $, el, show, fmtInt, fmtScore } from './ui.js';
import { scoreWindows, rank, lexicalMatches, tokenMarks, snippetRange, alignment, prettyToken, rowSpan } from './search.js';

const SHOWN = 10;
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
  renderResults();
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

/** Scores the last query again, against the index as it is now. */
export async function rescoreLast() {
  if (!state.last || state.mismatch || state.reindexing) return;
  state.last.scored = scoreWindows(state.last.emb, state.docs);
  renderResults();
}

// ── Hits ──────────────────────────────────────────────────────────────────────────────────────
export function renderResults() {
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
  shown.forEach((h, i) => list.append(renderHit(h, i, { emb, qTokens, maxSparse, rrf })));
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

function renderHit(h, i, { emb, qTokens, maxSparse, rrf }) {
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
