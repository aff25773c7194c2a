// The demo page (www/) end to end, on the wasm CPU backend with the tiny fixture model, over the
// package's hybrid index: load, index the sample corpus (sizes per lane shown), search (time per
// stage), weights and fusion, highlights and ColBERT alignment, scores against the package's
// scoring of a fresh encoding (within the int8 bound), the synthetic scale test, errors a person
// understands, no network request after the model is loaded, reload (index and cached model
// survive), another model's index refused and re-indexed, the ColBERT option changed (a re-index),
// export/import, removal. Saves a screenshot to test-results/demo-results.png (and docs/demo.png
// with UPDATE_DEMO_SCREENSHOT=1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve, launch, requireFixtures, root } from './server.mjs';
import { DEFAULT_WEIGHTS } from '../../pkg/src/index.js';

const PAGE = '/www/?model=/fixtures/tiny-m3/&device=cpu';
const QUERY = 'How do I keep a sourdough starter alive in the fridge?';
const artifacts = path.join(root, 'test-results');
let server, base, browser, context, page;
let recording = null; // URLs requested while recording
const pageErrors = [];

before(async () => {
  requireFixtures();
  fs.mkdirSync(artifacts, { recursive: true });
  ({ server, base } = await serve());
  browser = await launch();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log('[page]', m.text()); });
  page.on('pageerror', e => pageErrors.push(e.message));
  page.on('request', r => recording?.push(`${r.method()} ${r.url()}`));
});
after(async () => { await browser?.close(); server?.close(); });

const sampleCount = () => JSON.parse(fs.readFileSync(path.join(root, 'www/corpus/manifest.json'), 'utf8')).documents.length;
const hits = () => page.$$eval('#results .hit', hs => hs.map(h => ({
  id: h.dataset.id, name: h.dataset.name, window: +h.dataset.window, score: +h.dataset.score, hybrid: +h.dataset.hybrid,
  dense: +h.dataset.dense, sparse: +h.dataset.sparse, colbert: h.dataset.colbert === '' ? null : +h.dataset.colbert,
  bars: [...h.querySelectorAll('.bar-val')].map(b => +b.textContent),
})));
/** The index's sizes as the page shows them: bytes per lane, total, page memory. */
const lanes = () => page.$eval('#index-stats', box => ({
  ...Object.fromEntries([...box.querySelectorAll('tr[data-lane]')].map(r => [r.dataset.lane, +r.dataset.bytes])),
  total: +box.dataset.total, memory: +box.dataset.memory,
}));
/** The page's last index search asked for and last shown (#search-stats data-asked, data-done). */
const searched = () => page.$eval('#search-stats', s => s.dataset.done ?? '');
/** Waits until a search asked after `before` (searched()) has been shown, and no later one waits. */
const settled = before => page.waitForFunction(b => { const d = document.querySelector('#search-stats').dataset; return d.done !== b && d.done === d.asked; }, before);
const docCount = () => page.$$eval('#docs li.doc', l => l.length);
const MODES = ['dense', 'sparse', 'colbert'];
const sliders = async () => Object.fromEntries(await Promise.all(MODES.map(async k => [k, +(await page.inputValue(`#w-${k}`))])));
/** Sets the sliders; each change searches the index again: waits for the answer to the last. */
async function setWeights(d, s, c) {
  const before = await searched();
  await page.fill('#w-dense', String(d));
  await page.fill('#w-sparse', String(s));
  await page.fill('#w-colbert', String(c));
  await settled(before);
}
async function search(q) {
  await page.fill('#query', q);
  await page.click('#search');
  await page.waitForFunction(() => document.body.dataset.searching === 'no' && document.querySelector('#results .hit'));
}
function nonIncreasing(xs) {
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[i - 1] + 1e-12) return false;
  return true;
}

test('loads the fixture model on the wasm CPU backend, with per-file progress', { timeout: 120_000 }, async () => {
  await page.goto(base + PAGE);
  await page.waitForSelector('body[data-started=yes]');
  assert.equal(await page.inputValue('#source-url'), '/fixtures/tiny-m3/');
  assert.equal(await page.inputValue('#device'), 'cpu');
  // Search is off until a model is loaded: a click on it does nothing (no message, no exception).
  assert.equal(await page.isDisabled('#search'), true, 'the search button is off before a model is loaded');
  await page.click('#search', { force: true });
  assert.equal(await page.isHidden('#search-msg'), true, `no search message before a model is loaded: ${await page.textContent('#search-msg')}`);
  assert.equal(await page.$$eval('#results .hit', l => l.length), 0);
  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  await page.click('#load');
  await page.waitForSelector('body[data-model=ready]', { timeout: 90_000 });
  assert.equal(await page.getAttribute('#backend', 'data-backend'), 'cpu');
  assert.match(await page.textContent('#backend'), /CPU/);
  const files = await page.$$eval('#files .file', l => l.map(f => [f.dataset.file, f.dataset.phase, f.querySelector('.file-info').textContent]));
  const names = files.map(f => f[0]);
  for (const n of ['config.json', 'tokenizer.json', 'pytorch_model.bin', 'colbert_linear.pt', 'sparse_linear.pt']) assert.ok(names.includes(n), `progress row for ${n}: ${names}`);
  const enc = files.find(f => f[0] === 'pytorch_model.bin');
  assert.equal(enc[1], 'download');
  assert.match(enc[2], /MB \/ .*MB · .*\/s/);
  assert.match(await page.textContent('#model-msg'), /Ready: 32-dimensional/);
  assert.match(await page.textContent('#privacy'), /0 network requests since the model loaded/);
});

test('indexes the sample corpus (long documents in windows) without any network request; sizes per lane', { timeout: 180_000 }, async () => {
  recording = [];
  const n = sampleCount();
  const t0 = Date.now();
  const seen = [];
  const poll = setInterval(() => page.textContent('#indexing-stats').then(t => seen.push(t), () => {}), 500);
  await page.click('#sample');
  await page.waitForFunction(want => document.querySelectorAll('#docs li.doc').length === want && document.body.dataset.indexing === 'no', n, { timeout: 150_000 });
  clearInterval(poll);
  assert.ok(seen.some(t => /[\d,]+ tokens · [\d,]+ tokens\/s · [\d.]+ documents\/s/.test(t)), `live progress: ${seen.slice(0, 3)}`);
  console.log(`indexed ${n} documents in ${Date.now() - t0} ms: ${await page.textContent('#indexing-label')} — ${await page.textContent('#indexing-stats')}`);
  assert.match(await page.textContent('#indexing-label'), new RegExp(`Indexed ${n} documents`));
  assert.match(await page.textContent('#indexing-stats'), /tokens\/s/);
  const metas = await page.$$eval('#docs .doc-meta', l => l.map(x => x.textContent));
  const long = metas.filter(m => /windows/.test(m));
  assert.ok(long.length >= 2, `at least two documents over 8192 tokens, split in windows: ${metas}`);
  for (const m of long) assert.ok(+m.replace(/,/g, '').match(/^(\d+) tokens/)[1] > 8192, m);
  // The index's size per lane, as the index counts it (stats()), and its page memory.
  const b = await lanes();
  const want = await page.evaluate(async () => {
    const { openIndex } = await import('/pkg/src/index.js');
    const ix = await openIndex(localStorage.getItem('bge-m3-demo:index') || 'bge-m3-demo', { storage: 'indexeddb' });
    const s = ix.stats();
    ix.close();
    return s;
  });
  for (const k of ['dense', 'sparse', 'colbert', 'tokens', 'text', 'docs']) assert.equal(b[k], want.bytes[k], `${k} bytes shown`);
  assert.equal(b.total, want.bytes.total);
  assert.equal(want.documents, n);
  assert.equal(want.options.colbert, 'int8', 'int8 ColBERT rows by default');
  assert.ok(b.colbert > 20 * b.dense, `ColBERT rows (one per token) outweigh the dense vectors (one per window): ${JSON.stringify(b)}`);
  // int8: dim bytes + a 4-byte scale per window, and per token dim + 4.
  assert.equal(b.dense, want.windows * (want.options.dim + 4));
  assert.ok(b.memory > 0 && b.memory < 50e6, `page memory ${b.memory}`);
  const statsText = await page.textContent('#index-stats');
  assert.match(statsText, new RegExp(`${n} documents · \\d+ windows · [\\d,]+ tokens · 32-dimensional vectors`));
  assert.match(statsText, /In page memory: [\d.]+ [KM]B — the dense lane and the lexical postings/);
  assert.match(await page.textContent('#storage'), /Stored in this browser \(index and cached model\): [\d.]+ [KMG]?B of [\d.]+ [KMG]?B available; the index's records take [\d.]+ [KM]B of it\./);
  const { usage, quota } = await page.evaluate(() => navigator.storage.estimate());
  assert.ok(+(await page.getAttribute('#storage', 'data-quota')) === quota && usage > 0, 'usage and quota are navigator.storage.estimate()\'s');
  assert.deepEqual(recording, [], 'no network request while indexing');
});

test('search: ranked by the hybrid score, per-mode bars, time per stage, highlights, ColBERT alignment; no network', { timeout: 120_000 }, async () => {
  // The sliders start at the package's default weights, and the page says so.
  assert.deepEqual(await sliders(), { ...DEFAULT_WEIGHTS });
  const w = DEFAULT_WEIGHTS, sum = w.dense + w.sparse + w.colbert;
  assert.equal(await page.textContent('#w-reset'), `Reset ${w.dense} / ${w.sparse} / ${w.colbert}`);
  assert.ok((await page.textContent('#fusion-help')).startsWith(`Score = (${w.dense.toFixed(2)}·dense + ${w.sparse.toFixed(2)}·lexical + ${w.colbert.toFixed(2)}·ColBERT) / ${sum.toFixed(2)},`),
    await page.textContent('#fusion-help'));
  await search(QUERY);
  assert.equal(await page.$$eval('#results .hit', l => l.length), 10);
  // The time of each stage of the index's search, and the query's encoding.
  const st = await page.$eval('#search-stats', s => ({ ...s.dataset, text: s.textContent }));
  for (const k of ['encodeMs', 'denseMs', 'sparseMs', 'readMs', 'colbertMs', 'totalMs']) assert.ok(Number.isFinite(+st[k]) && +st[k] >= 0, `${k}: ${st[k]}`);
  assert.ok(+st.totalMs >= +st.denseMs + +st.sparseMs + +st.readMs + +st.colbertMs - 1e-6, 'the stages are parts of the whole search');
  assert.equal(st.colbert, 'stored');
  assert.match(st.text, /\d+ documents ranked in [\d,]+ ms — query encoded in [\d,]+ ms, searched in [\d.]+ ms over \d+ windows \(\d+ candidates reranked\)/);
  assert.match(st.text, /Index stages: dense lane [\d.]+ ms · lexical postings [\d.]+ ms · reading candidates [\d.]+ ms · ColBERT MaxSim [\d.]+ ms/);
  await page.click('#results .more button');
  await page.waitForFunction(want => document.querySelectorAll('#results .hit').length === want, sampleCount());
  const hs = await hits();
  assert.equal(hs.length, sampleCount(), 'every window is a candidate of so small an index: every document is ranked');
  for (const h of hs) {
    const want = (w.dense * h.dense + w.sparse * h.sparse + w.colbert * h.colbert) / sum;
    assert.ok(Math.abs(h.score - want) < 1e-9, `${h.name}: score ${h.score} = (${w.dense}·${h.dense} + ${w.sparse}·${h.sparse} + ${w.colbert}·${h.colbert}) / ${sum}`);
    assert.deepEqual(h.bars, [h.dense, h.sparse, h.colbert].map(x => +x.toFixed(3)), 'bars show the per-mode scores');
  }
  assert.ok(nonIncreasing(hs.map(h => h.score)), 'ranked by hybrid score');
  // The query's words are highlighted where they match lexically, with their weights.
  const marked = await page.$$eval('#results .hit', l => l.map(h => [h.querySelectorAll('.snippet mark').length, h.querySelectorAll('.token-chip').length]));
  assert.ok(marked.some(([m, c]) => m > 0 && c > 0), 'some hit has lexical highlights and token weights');
  const sourdough = hs.find(h => /Sourdough/.test(h.name));
  const chips = await page.$eval(`#results .hit[data-id="${sourdough.id}"]`, h => [...h.querySelectorAll('.token-chip b')].map(b => b.textContent));
  assert.ok(chips.includes('starter'), `"starter" matched lexically in the sourdough note: ${chips}`);
  const marks = await page.$eval(`#results .hit[data-id="${sourdough.id}"]`, h => [...h.querySelectorAll('.snippet mark')].map(m => m.textContent));
  assert.ok(marks.some(m => /^starter$/i.test(m)), `"starter" is marked in the snippet (from the window's stored spans): ${marks}`);
  // ColBERT alignment on demand: one row per query token (and </s>), with a heat strip each,
  // from the window's stored rows.
  await page.click(`#results .hit[data-id="${sourdough.id}"] .actions button`);
  const rows = await page.$$eval(`#results .hit[data-id="${sourdough.id}"] .align-table tbody tr`, l => l.map(r => [r.querySelector('.qtok').textContent, !!r.querySelector('canvas.strip'), +r.querySelector('.sim').textContent]));
  assert.ok(rows.length > 5 && rows.every(r => r[1] && Number.isFinite(r[2])), JSON.stringify(rows));
  assert.equal(rows.at(-1)[0], '</s>');
  // The mean of the best matches is the ColBERT score.
  const mean = rows.reduce((s, r) => s + r[2], 0) / rows.length;
  assert.ok(Math.abs(mean - sourdough.colbert) < 2e-3, `alignment mean ${mean} vs ColBERT ${sourdough.colbert}`);
  // A long document's hit names its window and character span.
  const longHit = await page.$$eval('#results .hit .where', l => l.map(x => x.textContent).find(t => /Best window/.test(t)));
  assert.match(longHit, /Best window \d of \d: characters [\d,]+–[\d,]+ of [\d,]+/);
  assert.deepEqual(recording, [], 'no network request while searching');
  assert.match(await page.textContent('#privacy'), /0 network requests since the model loaded/);
});

test('weights: dense only ranks by the dense bars, lexical only by the lexical bars; fusion', { timeout: 60_000 }, async () => {
  await setWeights(1, 0, 0);
  const dense = await hits();
  assert.ok(nonIncreasing(dense.map(h => h.dense)), `dense-only ranking follows the dense scores: ${dense.map(h => h.dense)}`);
  for (const h of dense) assert.ok(Math.abs(h.score - h.dense) < 1e-12);
  assert.ok(dense.every(h => h.colbert === null), 'ColBERT weight 0: not computed');
  await setWeights(0, 1, 0);
  const sparse = await hits();
  assert.ok(nonIncreasing(sparse.map(h => h.sparse)), `lexical-only ranking follows the lexical scores: ${sparse.map(h => h.sparse)}`);
  assert.notDeepEqual(sparse.map(h => h.id), dense.map(h => h.id), 'the ranking changes with the weights');
  await setWeights(0, 0, 1);
  const colbert = await hits();
  assert.ok(nonIncreasing(colbert.map(h => h.colbert)), `ColBERT-only ranking follows the ColBERT scores: ${colbert.map(h => h.colbert)}`);
  for (const h of colbert) assert.ok(Math.abs(h.score - h.colbert) < 1e-12);
  await setWeights(0, 0, 0);
  assert.match(await page.textContent('#search-msg'), /at least one/);
  assert.equal(await page.$$eval('#results .hit', l => l.length), 0, 'no ranking without a weight');
  let before = await searched();
  await page.click('#w-reset');
  await settled(before);
  assert.deepEqual(await sliders(), { ...DEFAULT_WEIGHTS }, 'reset puts the package\'s default weights back');
  before = await searched();
  await page.check('#rrf');
  await settled(before);
  const rrf = await hits();
  assert.ok(nonIncreasing(rrf.map(h => h.score)));
  assert.ok(rrf.every(h => h.score > 0 && h.score <= 3 / 61 + 1e-12), 'RRF scores are sums of 1/(60 + rank)');
  // Each score is the sum over the three per-mode rankings of 1/(60 + rank), rank from 1, of the
  // documents' best windows; ties keep the order of the weighted ranking (hybrid, then id).
  assert.equal(rrf.length, sampleCount(), 'every document is ranked (the top 10 shown)');
  const order = [...rrf].sort((a, b) => b.hybrid - a.hybrid || (a.id < b.id ? -1 : 1));
  const fused = new Map(order.map(h => [h.id, 0]));
  for (const m of MODES) [...order].sort((a, b) => b[m] - a[m]).forEach((h, r) => fused.set(h.id, fused.get(h.id) + 1 / (60 + r + 1)));
  for (const h of rrf) assert.ok(Math.abs(h.score - fused.get(h.id)) < 1e-12, `${h.name}: RRF ${h.score}, want ${fused.get(h.id)}`);
  assert.match(await page.textContent('#fusion-help'), /Reciprocal-rank fusion: each document gets Σ 1\/\(60 \+ rank\) over the rankings by dense, lexical, ColBERT/);
  before = await searched();
  await page.uncheck('#rrf');
  await settled(before);
  assert.deepEqual(recording, [], 'no network request while re-ranking');
  recording = null;
});

test('the scores match the package scoring of a fresh encoding, within the int8 bound (independent check)', { timeout: 60_000 }, async () => {
  await setWeights(DEFAULT_WEIGHTS.dense, DEFAULT_WEIGHTS.sparse, DEFAULT_WEIGHTS.colbert);
  const hs = await hits();
  const short = hs.find(h => /Tide Pool/.test(h.name));
  const text = fs.readFileSync(path.join(root, 'www/corpus/en-tide-pools.txt'), 'utf8').trim();
  const p2 = await context.newPage(); // not the demo page: its own network counter stays at 0
  await p2.goto(`${base}/www/favicon.svg`);
  const want = await p2.evaluate(async ([q, p]) => {
    const { load, hybridScores } = await import('/pkg/src/index.js');
    const m = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: false, worker: false });
    const [qe, pe] = await m.encode([q, p]);
    const s = hybridScores(qe, pe);
    await m.dispose();
    // The int8 bound: a stored row r is codes * scale with |error| <= scale / 2 = max|r| / 254 per
    // value, so q·r moves by at most sum|q| * max|r| / 254 (MaxSim's max and mean move by at most
    // the largest such bound). Plus the SIMD kernels' i16 rounding of the query (< 1e-5).
    const dim = qe.dense.length;
    const l1 = (v, o = 0) => { let t = 0; for (let i = o; i < o + dim; i++) t += Math.abs(v[i]); return t; };
    const maxAbs = (v, o = 0) => { let t = 0; for (let i = o; i < o + dim; i++) t = Math.max(t, Math.abs(v[i])); return t; };
    const rows = (x, f) => Array.from({ length: x.rows }, (_, r) => f(x.data, r * dim));
    const bound = {
      dense: (l1(qe.dense) * maxAbs(pe.dense)) / 254 + 1e-5,
      sparse: 1e-6,
      colbert: (Math.max(...rows(qe.colbert, l1)) * Math.max(...rows(pe.colbert, maxAbs))) / 254 + 1e-5,
    };
    return { s, bound };
  }, [QUERY, text]);
  await p2.close();
  for (const k of ['dense', 'sparse', 'colbert']) {
    const d = Math.abs(short[k] - want.s[k]);
    assert.ok(d <= want.bound[k], `${k}: page ${short[k]} vs package ${want.s[k]} (f32): ${d} above the int8 bound ${want.bound[k]}`);
  }
  const w = DEFAULT_WEIGHTS, bound = (w.dense * want.bound.dense + w.sparse * want.bound.sparse + w.colbert * want.bound.colbert) / (w.dense + w.sparse + w.colbert);
  assert.ok(Math.abs(short.score - want.s['colbert+sparse+dense']) <= bound, `hybrid ${short.score} vs ${want.s['colbert+sparse+dense']}`);
  console.log(`int8 vs f32 on the tide-pool note: dense ${Math.abs(short.dense - want.s.dense).toExponential(1)} (bound ${want.bound.dense.toExponential(1)}), colbert ${Math.abs(short.colbert - want.s.colbert).toExponential(1)} (bound ${want.bound.colbert.toExponential(1)})`);
});

test('the scale test: a synthetic index in page memory, searched with the real query; the person\'s index untouched', { timeout: 120_000 }, async () => {
  recording = [];
  const docsBefore = await docCount(), lanesBefore = await lanes();
  await page.selectOption('#scale-n', '10000');
  await page.click('#scale-run');
  await page.waitForFunction(() => document.body.dataset.scale === 'done', null, { timeout: 100_000 });
  assert.equal(await page.isHidden('#scale-msg'), true, await page.textContent('#scale-msg'));
  const out = await page.$eval('#scale-out', o => ({ ...o.dataset, text: o.textContent }));
  assert.equal(+out.windows, 10_000);
  assert.match(out.text, /^Synthetic data — not your documents, never stored, deleted now\. 10,000 windows in 2,500 documents, 32-dimensional/);
  assert.match(out.text, new RegExp(`searched with your query “${QUERY.replace(/[?]/g, '\\?')}” as the model encodes it`));
  for (const k of ['denseMs', 'sparseMs', 'readMs', 'totalMs']) assert.ok(Number.isFinite(+out[k]) && +out[k] >= 0, `${k}: ${out[k]}`);
  assert.ok(+out.memory > 10_000 * 32, `page memory holds at least the dense lane: ${out.memory}`);
  assert.match(out.text, /Top synthetic hits: synthetic-\d+ \(/);
  console.log(`scale test, 10,000 windows at 32 dims: ${out.text.match(/Built in[^a-z]*s/)?.[0]}; search ${(+out.totalMs).toFixed(1)} ms (dense ${(+out.denseMs).toFixed(1)}, lexical ${(+out.sparseMs).toFixed(1)}, read ${(+out.readMs).toFixed(1)}); memory ${(out.memory / 1e6).toFixed(1)} MB`);
  // Never mixed into the person's index, nothing stored, nothing fetched.
  assert.equal(await docCount(), docsBefore);
  assert.deepEqual(await lanes(), lanesBefore);
  const dbs = await page.evaluate(async () => (await indexedDB.databases()).map(d => d.name));
  assert.ok(!dbs.some(n => /scale|synthetic/i.test(n)), `no database of the test: ${dbs}`);
  await search(QUERY);
  assert.ok((await hits()).every(h => !h.id.startsWith('synthetic-')));
  assert.deepEqual(recording, [], 'no network request during the scale test');
  recording = null;
});

test('errors a person understands: empty query, a file that is not text, a missing model file', { timeout: 90_000 }, async () => {
  await page.fill('#query', '   ');
  await page.click('#search');
  assert.match(await page.textContent('#search-msg'), /Type a question/);
  await page.setInputFiles('#pick', [{ name: 'photo.png', mimeType: 'image/png', buffer: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13]) }]);
  await page.waitForSelector('#index-msg:not([hidden])');
  assert.match(await page.textContent('#index-msg'), /“photo\.png” is not a text file/);
  await page.setInputFiles('#pick', [{ name: 'data.txt', mimeType: 'text/plain', buffer: Buffer.from([1, 2, 0, 0, 5, 6, 0, 7]) }]);
  await page.waitForFunction(() => /data\.txt/.test(document.querySelector('#index-msg').textContent));
  assert.match(await page.textContent('#index-msg'), /“data\.txt” is not a text file \(it holds binary data\)/);
  assert.equal(await docCount(), sampleCount(), 'nothing was added');
  // A text file is accepted (HTML converted to text, its title kept).
  await page.setInputFiles('#pick', [{ name: 'note.html', mimeType: 'text/html', buffer: Buffer.from('<!doctype html><title>Harbour note</title><script>alert(1)</script><p>The ferry leaves the harbour at seven.</p>') }]);
  await page.waitForFunction(want => document.querySelectorAll('#docs li.doc').length === want && document.body.dataset.indexing === 'no', sampleCount() + 1);
  assert.ok((await page.$$eval('#docs .doc-name', l => l.map(x => x.textContent))).includes('Harbour note (note.html)'));
  // Pasted text.
  await page.click('.paste summary');
  await page.fill('#paste-title', 'Ferry timetable');
  await page.fill('#paste-text', 'Die Fähre nach der Insel fährt im Winter nur zweimal am Tag.');
  await page.click('#paste-add');
  await page.waitForFunction(want => document.querySelectorAll('#docs li.doc').length === want && document.body.dataset.indexing === 'no', sampleCount() + 2);
  assert.ok((await page.$$eval('#docs .doc-name', l => l.map(x => x.textContent))).includes('Ferry timetable'));
  // A model URL without the files: says which file is missing where.
  const p2 = await context.newPage();
  await p2.goto(`${base}/www/?model=/fixtures/no-such-model/&device=cpu`);
  await p2.waitForSelector('body[data-started=yes]');
  await p2.click('#load');
  await p2.waitForSelector('#model-msg.error');
  assert.match(await p2.textContent('#model-msg'), /A model file is missing: config\.json: HTTP 404/);
  await p2.close();
});

test('a model folder picked from disk loads without any request for model files', { timeout: 90_000 }, async () => {
  const p2 = await context.newPage();
  const urls = [];
  p2.on('request', r => urls.push(new URL(r.url()).pathname));
  await p2.goto(`${base}/www/?device=cpu`);
  // The model loaded last (the fixture URL) is cached, so the page loads it by itself first.
  await p2.waitForSelector('body[data-model=ready]', { timeout: 60_000 });
  assert.match(await p2.inputValue('#source-url'), /\/fixtures\/tiny-m3\/$/);
  urls.length = 0;
  await p2.setInputFiles('#source-folder', path.join(root, '../shared/fixtures/tiny-m3'));
  assert.ok(await p2.isChecked('input[name=source][value=folder]'));
  await p2.click('#load');
  await p2.waitForFunction(() => /folder/.test(document.querySelector('#model-msg').textContent) && document.body.dataset.model === 'ready', null, { timeout: 60_000 });
  assert.match(await p2.textContent('#model-msg'), /Ready: 32-dimensional.*folder “tiny-m3” on this computer/);
  assert.deepEqual(urls.filter(u => u.startsWith('/fixtures/')), []);
  // The same index: the fingerprint matches a model loaded from elsewhere with the same weights.
  assert.ok((await p2.$$eval('#docs li.doc', l => l.length)) > 0, 'the index is there, so the two fingerprints were compared');
  assert.equal(await p2.getAttribute('body', 'data-mismatch'), 'no');
  assert.equal(await p2.isHidden('#mismatch'), true);
  await p2.close();
});

test('screenshot of the results', { timeout: 60_000 }, async () => {
  await search('Wie schütze ich mein Fahrrad im Winter vor Rost?');
  await page.evaluate(() => window.scrollTo(0, 0));
  const file = path.join(artifacts, 'demo-results.png');
  assert.match(await page.textContent('#privacy'), /0 network requests since the model loaded/);
  await page.screenshot({ path: file, animations: 'disabled' });
  if (process.env.UPDATE_DEMO_SCREENSHOT === '1') fs.copyFileSync(file, path.join(root, 'docs/demo.png'));
  assert.ok(fs.statSync(file).size > 10_000);
});

test('after a reload: the index is still there and the cached model loads without downloading', { timeout: 120_000 }, async () => {
  const before = (await hits())[0];
  const n = await docCount();
  const lanesBefore = await lanes();
  const requests = [];
  const onReq = r => requests.push(new URL(r.url()).pathname);
  page.on('request', onReq);
  await page.reload();
  await page.waitForSelector('body[data-started=yes]');
  assert.equal(await docCount(), n, 'documents restored from IndexedDB before the model loads');
  assert.deepEqual(await lanes(), { ...lanesBefore, memory: (await lanes()).memory }, 'the same index (page memory may differ: a reopened index sizes its tables to fit)');
  await page.waitForSelector('body[data-model=ready]', { timeout: 90_000 });
  page.off('request', onReq);
  assert.deepEqual(requests.filter(p => p.startsWith('/fixtures/')), [], 'no model file downloaded');
  const phases = await page.$$eval('#files .file', l => Object.fromEntries(l.map(f => [f.dataset.file, f.dataset.phase])));
  assert.equal(phases['pytorch_model.bin'], 'cache');
  assert.match(await page.textContent('#files'), /from the browser cache, no download/);
  await search('Wie schütze ich mein Fahrrad im Winter vor Rost?');
  const again = (await hits())[0];
  assert.equal(again.id, before.id);
  assert.ok(Math.abs(again.score - before.score) < 1e-6);
});

test('an index made by another model is refused, and re-indexing fixes it', { timeout: 180_000 }, async () => {
  // The index is replaced by one of a 1024-wide model (its fingerprint and every vector), made
  // through the package from the stored documents' texts and tokens. The two long documents are
  // left out, to keep the re-indexing short on the CPU.
  const kept = await page.evaluate(async () => {
    const { openIndex, deleteIndex } = await import('/pkg/src/index.js');
    const current = localStorage.getItem('bge-m3-demo:index') || 'bge-m3-demo';
    const src = await openIndex(current, { storage: 'indexeddb' });
    const dim = 1024;
    const unit = rows => { const a = new Float32Array(rows * dim); for (let r = 0; r < rows; r++) a[r * dim + (r % dim)] = 1; return a; };
    const items = [];
    for await (const d of src.documents()) {
      if (d.windows.length > 1) continue;
      const windows = d.windows.map(({ colbertAssign, ...w }) => ({ ...w, dense: unit(1), colbert: { data: unit(w.inputIds.length - 1), rows: w.inputIds.length - 1, dim } }));
      items.push({ id: d.id, text: d.text, meta: d.meta, embedding: { windows } });
    }
    src.close();
    const probe = new Float32Array(dim);
    probe[0] = 1;
    const other = await openIndex('bge-m3-demo~another-model', { storage: 'indexeddb', fingerprint: { dim, probe } });
    await other.add(items);
    other.close();
    localStorage.setItem('bge-m3-demo:index', 'bge-m3-demo~another-model');
    await deleteIndex(current, { storage: 'indexeddb' });
    return items.length;
  });
  await page.reload();
  await page.waitForSelector('body[data-model=ready]', { timeout: 90_000 });
  await page.waitForSelector('#mismatch:not([hidden])');
  assert.equal(await docCount(), kept);
  assert.match(await page.textContent('#mismatch-text'), /different model \(1024-dimensional vectors\) than the one loaded now \(32-dimensional, from /);
  assert.match(await page.textContent('#index-stats'), /1024-dimensional vectors/);
  await page.fill('#query', 'bees');
  await page.click('#search');
  assert.match(await page.textContent('#search-msg'), /another model/);
  assert.equal(await page.$$eval('#results .hit', l => l.length), 0);
  await page.click('#reindex');
  await page.waitForFunction(() => document.body.dataset.mismatch === 'no' && document.body.dataset.indexing === 'no', null, { timeout: 150_000 });
  assert.match(await page.textContent('#indexing-label'), new RegExp(`^Re-indexed ${kept} documents`));
  assert.equal(await docCount(), kept);
  assert.match(await page.textContent('#index-stats'), /32-dimensional vectors/);
  // The re-index made a new index and deleted the other model's.
  const dbs = await page.evaluate(async () => ({ current: localStorage.getItem('bge-m3-demo:index'), names: (await indexedDB.databases()).map(d => d.name).filter(n => n.startsWith('bge-m3-index:bge-m3-demo')) }));
  assert.notEqual(dbs.current, 'bge-m3-demo~another-model');
  assert.deepEqual(dbs.names, [`bge-m3-index:${dbs.current}`]);
  await search('When do bees swarm?');
  assert.ok((await hits()).length > 0);
});

test('the ColBERT option: pooled rows by re-indexing (half the ColBERT bytes; search and alignment on them), then none', { timeout: 180_000 }, async () => {
  const n = await docCount(), before = await lanes();
  assert.equal(await page.getAttribute('body', 'data-colbert'), 'int8');
  await page.selectOption('#colbert-option', 'pooled');
  await page.waitForSelector('#colbert-change:not([hidden])');
  assert.match(await page.textContent('#colbert-change-text'), new RegExp(`keeps ColBERT as “int8”\\. Changing it to “pooled” means re-indexing its ${n} documents`));
  await page.click('#colbert-reindex');
  await page.waitForFunction(() => document.body.dataset.colbert === 'pooled' && document.body.dataset.indexing === 'no', null, { timeout: 150_000 });
  assert.match(await page.textContent('#indexing-label'), new RegExp(`^Re-indexed ${n} documents`));
  assert.equal(await page.isHidden('#colbert-change'), true);
  const after = await lanes();
  assert.equal(after.dense, before.dense);
  assert.ok(after.colbert < 0.6 * before.colbert && after.colbert > 0.4 * before.colbert, `pooled ColBERT bytes ${after.colbert} vs int8 ${before.colbert}`);
  assert.match(await page.textContent('#index-stats'), /int8, pooled: one row per 2 tokens/);
  await search(QUERY);
  const hs = await hits();
  const top = hs[0];
  await page.click(`#results .hit[data-id="${top.id}"] .actions button`);
  const rows = await page.$$eval(`#results .hit[data-id="${top.id}"] .align-table tbody tr`, l => l.map(r => +r.querySelector('.sim').textContent));
  const mean = rows.reduce((s, x) => s + x, 0) / rows.length;
  assert.ok(Math.abs(mean - top.colbert) < 2e-3, `alignment over the pooled rows: mean ${mean} vs ColBERT ${top.colbert}`);
  // No ColBERT rows at all: dense and lexical only; the page says ColBERT was left out.
  await page.selectOption('#colbert-option', 'none');
  await page.click('#colbert-reindex');
  await page.waitForFunction(() => document.body.dataset.colbert === 'none' && document.body.dataset.indexing === 'no', null, { timeout: 150_000 });
  assert.equal((await lanes()).colbert, 0);
  await search(QUERY);
  assert.equal(await page.getAttribute('#search-stats', 'data-colbert'), 'skipped');
  assert.match(await page.textContent('#search-stats'), /ColBERT is not stored in this index \(created with ColBERT “none”\): its weight is left out\./);
  const w = DEFAULT_WEIGHTS;
  for (const h of await hits()) {
    assert.equal(h.colbert, null);
    assert.ok(Math.abs(h.score - (w.dense * h.dense + w.sparse * h.sparse) / (w.dense + w.sparse)) < 1e-9, `${h.name}: dense and lexical only`);
  }
  assert.equal(await page.isDisabled('#results .hit .actions button'), true, 'no ColBERT alignment without rows');
  assert.ok((await page.$$eval('#results .hit .snippet mark', l => l.length)) > 0, 'highlights still come from the stored spans');
});

test('export, clear, import, remove', { timeout: 120_000 }, async () => {
  const n = await docCount();
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const file = path.join(artifacts, 'demo-index.m3index');
  await download.saveAs(file);
  assert.ok(fs.statSync(file).size > 1000);
  assert.equal(fs.readFileSync(file).subarray(0, 8).toString(), 'BGEM3HIX', 'the package index\'s own file');
  await page.click('#clear-index');
  await page.waitForFunction(() => document.body.dataset.docs === '0');
  assert.equal(await docCount(), 0);
  assert.equal(await page.isHidden('#index-stats'), true, 'no index after a clear');
  await page.selectOption('#colbert-option', 'int8'); // for the next index made: the import's options win
  await page.setInputFiles('#import', file);
  await page.waitForFunction(want => document.querySelectorAll('#docs li.doc').length === want, n);
  assert.match(await page.textContent('#index-msg'), new RegExp(`Imported ${n} documents`));
  assert.equal(await page.getAttribute('body', 'data-colbert'), 'none', 'the file\'s options come with it');
  await search('When do bees swarm?');
  const top = (await hits())[0];
  await page.click(`#docs li.doc[data-id="${top.id}"] .remove`);
  await page.waitForFunction(want => document.querySelectorAll('#docs li.doc').length === want, n - 1);
  await page.waitForFunction(id => ![...document.querySelectorAll('#results .hit')].some(h => h.dataset.id === id), top.id);
  await page.reload();
  await page.waitForSelector('body[data-started=yes]');
  assert.equal(await docCount(), n - 1);
  await page.waitForSelector('body[data-model=ready]', { timeout: 90_000 });
  // Indexing can be cancelled (the sample corpus again: its long documents were dropped above).
  await page.click('#sample');
  await page.waitForSelector('body[data-indexing=yes]');
  await page.click('#index-cancel');
  await page.waitForFunction(() => document.body.dataset.indexing === 'no');
  assert.match(await page.textContent('#indexing-label'), /Cancelled after \d+ of \d+ documents?\./);
  assert.match(await page.textContent('#indexing-stats'), /None of the \d+ documents? (was|were) added; the index is as it was before/);
  assert.equal(await docCount(), n - 1, 'a cancelled run adds nothing');
  // A file that is not an index.
  await page.setInputFiles('#import', { name: 'notes.m3index', mimeType: 'application/octet-stream', buffer: Buffer.from('hello, world') });
  await page.waitForFunction(() => /could not be imported/.test(document.querySelector('#index-msg').textContent));
  assert.match(await page.textContent('#index-msg'), /this is not an index file/);
  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
});
