// The index benchmark (issue 13): the index's kernels and the whole index in headless Chromium on
// synthetic BGE-M3-shaped embeddings (scripts/index-synth.mjs), printed as markdown tables.
//
//   node scripts/bench-index.mjs                         N = 10,000 and 100,000 windows
//   node scripts/bench-index.mjs --windows 10000 --queries 50 --json bench-out/index.json
//   node scripts/bench-index.mjs --parts kernels          (or index, rerank, agreement; commas)
//
// What is measured, and how (ColBERT rows of 100,000 windows of 512 tokens would be ~51 GB of
// int8 rows, so the full path is measured in three parts, each on data of its real shape):
//  1. kernels at N windows: the dense lane (SIMD and JS) and the index's sparse postings, the
//     whole lane in the page; MaxSim for 32 / 64 / 128 candidates of 512 int8 rows and of 256
//     pooled rows, 16 query rows, SIMD and JS;
//  2. the index at N windows of 512 tokens without ColBERT rows (colbert: 'none'), in IndexedDB
//     and in memory: add() throughput, page memory, storage, search p50/p95 per stage (the
//     candidate stages run over all N windows);
//  3. the ColBERT stages on stores of 512-token windows with int8 rows (IndexedDB and memory,
//     --rerank-windows of them) and pooled rows (IndexedDB, at most 300: pooling is slow):
//     reading the candidates' records and MaxSim, for 32 / 64 / 128 candidates per lane. The
//     search time at N = part 2's dense + sparse stages + part 3's read + MaxSim stages scaled
//     by the windows reranked at N over those reranked on the store (p95: the sum of the
//     stages' p95s, an upper estimate);
//  4. agreement: the two-stage top-10 documents against the exhaustive f32 hybrid top-10
//     (FlagEmbedding's colbert+sparse+dense over every window, f32 vectors, each document by its
//     best window) on --agree-windows windows of --agree-tokens tokens, for int8, pooled, none.
//     The exhaustive ranking is computed here in Node: int8 MaxSim over every window with its
//     error bound, then the exact f32 MaxSim of every window that bound cannot rule out.
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { serve, launch } from '../tests/browser/server.mjs';
import { makeCorpus } from './index-synth.mjs';
import { maxSimInt8Simd, quantizeRows } from '../pkg/src/index/kernels.js';
import { denseScore, lexicalScore, colbertScore, weightedScore, DEFAULT_WEIGHTS } from '../pkg/src/scoring.js';
import { checksum } from './bench-index-page.mjs';

const { values: opt } = parseArgs({
  options: {
    windows: { type: 'string', default: '10000,100000' },
    queries: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    'rerank-windows': { type: 'string', default: '1000' },
    'agree-windows': { type: 'string', default: '10000' },
    'agree-tokens': { type: 'string', default: '64' },
    parts: { type: 'string', default: 'kernels,index,rerank,agreement' },
    json: { type: 'string' },
  },
});
const int = (s, name) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${s}`);
  return n;
};
const SIZES = opt.windows.split(',').map(s => int(s, 'windows'));
const QUERIES = int(opt.queries, 'queries');
const SEED = int(opt.seed, 'seed');
const RERANK_WINDOWS = int(opt['rerank-windows'], 'rerank-windows');
const AGREE_WINDOWS = int(opt['agree-windows'], 'agree-windows');
const AGREE_TOKENS = int(opt['agree-tokens'], 'agree-tokens');
const BUDGETS = [32, 64, 128];
const TOKENS = 512;
const PARTS = new Set(opt.parts.split(','));
for (const p of PARTS) if (!['kernels', 'index', 'rerank', 'agreement'].includes(p)) throw new Error(`--parts: unknown part ${p}`);

const results = { started: new Date().toISOString(), options: opt };
const log = (...a) => console.error(`[${((performance.now()) / 1000).toFixed(0)} s]`, ...a);
const ms = x => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const pp = s => `${ms(s.p50)} / ${ms(s.p95)}`;
const mb = b => `${(b / 1e6).toFixed(1)} MB`;
const table = (head, rows) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map(r => `| ${r.join(' | ')} |`)].join('\n');
const out = [];
const print = s => { out.push(s); console.log(s); };

// ── The browser, a page per part, and what the OS says the page's renderer holds ──────────────
const { server, base } = await serve();
const browser = await launch({ persistent: true }); // IndexedDB on disk, as a user's profile

/** Our Chromium's renderer processes (their parent chain leads to this Node process). */
function rendererRss() {
  const parent = pid => { try { return Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]); } catch { return 0; } };
  const ours = pid => { for (let p = pid, i = 0; p > 1 && i < 10; p = parent(p), i++) if (p === process.pid) return true; return false; };
  let best = 0;
  for (const pid of fs.readdirSync('/proc').filter(d => /^\d+$/.test(d)).map(Number)) {
    let cmd;
    try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { continue; }
    if (!cmd.includes('--type=renderer') || !ours(pid)) continue;
    const rss = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (rss) best = Math.max(best, Number(rss[1]) * 1024);
  }
  return best;
}

async function newPage() {
  const page = await browser.newPage();
  page.on('pageerror', e => log('[page error]', e.message));
  page.on('console', m => { if (m.type() === 'error') log('[page]', m.text()); });
  // Cross-origin isolation (COOP/COEP), so performance.measureUserAgentSpecificMemory works
  await page.route('**/scripts/bench-index.html', async route => {
    const response = await route.fetch();
    await route.fulfill({ response, headers: { ...response.headers(), 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } });
  });
  await page.goto(`${base}/scripts/bench-index.html`);
  await page.waitForFunction(() => window.benchIndex);
  const cdp = await page.context().newCDPSession(page);
  return { page, cdp, call: (fn, arg) => page.evaluate(([f, a]) => window.benchIndex[f](a), [fn, arg]) };
}

/** The page's memory after a full GC: the renderer's RSS, V8's heap (with ArrayBuffer backing
 *  stores, wasm memories included), and the browser's own per-page figure where available. */
async function pageMemory({ page, cdp }) {
  await cdp.send('HeapProfiler.collectGarbage');
  const heap = await cdp.send('Runtime.getHeapUsage');
  const uasm = await page.evaluate(async () => {
    if (!self.crossOriginIsolated || !performance.measureUserAgentSpecificMemory) return null;
    return (await performance.measureUserAgentSpecificMemory()).bytes;
  });
  return { rss: rendererRss(), heapUsed: heap.usedSize, backingStores: heap.backingStorageSize ?? null, uasm };
}

const P = await newPage();
const env = results.environment = {
  ...(await P.call('environment')),
  webgpu: await P.call('webgpuAdapter'),
  cpu: os.cpus()[0]?.model, cpus: os.cpus().length, memory: os.totalmem(), os: `${os.type()} ${os.release()}`, node: process.version,
};
print('## Index benchmark (scripts/bench-index.mjs)\n');
print(`Machine: ${env.cpu}, ${env.cpus} cores, ${(env.memory / 2 ** 30).toFixed(0)} GiB RAM, ${env.os}, Node ${env.node}.`);
print(`Browser: headless ${/Chrom(e|ium)\/[\d.]+/.exec(env.userAgent)?.[0] ?? env.userAgent}; kernels: ${env.kernels}; cross-origin isolated: ${env.crossOriginIsolated}.`);
print(`WebGPU adapter: ${JSON.stringify(env.webgpu)} — Chromium's WebGPU here is SwiftShader, a CPU emulation (the index itself uses no GPU).`);
print(`Data: scripts/index-synth.mjs, seed ${SEED}: 1024-dim unit dense, ~150 sparse ids per 512-token window (Zipf over 250,002 ids), unit ColBERT rows; ${QUERIES} planted queries (~10 sparse ids, 14-18 ColBERT rows; MaxSim table: 16 rows). Times in ms, p50 / p95.\n`);
const sum = await P.call('checksum', { seed: SEED, windows: AGREE_WINDOWS, tokens: AGREE_TOKENS });
if (sum !== checksum({ seed: SEED, windows: AGREE_WINDOWS, tokens: AGREE_TOKENS })) throw new Error('the corpus differs between Node and Chromium: the agreement figures would compare different data');

// ── 1. Kernels ───────────────────────────────────────────────────────────────────────────────
if (PARTS.has('kernels')) {
results.lanes = [];
for (const N of SIZES) {
  log(`lanes: ${N} windows`);
  const build = await P.call('buildLanes', { seed: SEED, windows: N });
  const mem = await pageMemory(P);
  const dense = await P.call('scanDense', { queries: QUERIES, jsQueries: Math.min(QUERIES, N > 20000 ? 20 : 50) });
  const sparse = await P.call('scanSparse', { queries: QUERIES, candidates: 64 });
  await P.call('dropLanes');
  results.lanes.push({ N, build, mem, dense, sparse });
}
print('### Dense and sparse lanes (the candidate stages\' kernels)\n');
print(table(['windows', 'dense scan SIMD', 'dense scan JS', 'max |SIMD − JS|', 'sparse: postings + top-64', 'windows reached (p50)', 'dense lane', 'postings', 'renderer RSS'],
  results.lanes.map(r => [r.N.toLocaleString('en'), pp(r.dense.simd), pp(r.dense.js), r.dense.maxDiff.toExponential(1), pp(r.sparse.ms), Math.round(r.sparse.reached.p50).toLocaleString('en'), mb(r.build.laneBytes), mb(r.build.postingsBytes), mb(r.mem.rss)])));
print('');

log('MaxSim');
results.maxsim = await P.call('maxsim', { seed: SEED, budgets: BUDGETS, rows: TOKENS, qRows: 16, reps: 20, jsReps: 3 });
print('### ColBERT MaxSim over the candidates (16 query rows, 1024 dims, one call per candidate)\n');
print(table(['layout', 'rows / candidate', 'candidates', 'SIMD', 'JS', 'JS / SIMD (p50)', 'max |SIMD − JS| / candidate'],
  results.maxsim.map(r => [r.layout, r.rows, r.budget, pp(r.simd), pp(r.js), `${(r.js.p50 / r.simd.p50).toFixed(1)}×`, r.maxDiff.toExponential(1)])));
print('');
}
await P.page.close();

// ── 2. The index without ColBERT rows at N windows ───────────────────────────────────────────
if (PARTS.has('index')) {
  results.index = [];
  for (const N of SIZES) {
    for (const storage of ['indexeddb', 'memory']) {
      log(`index: ${N} windows in ${storage}`);
      const p = await newPage();
      const build = await p.call('buildIndex', { name: `bench-${N}`, storage, seed: SEED, windows: N, windowTokens: TOKENS, colbert: 'none', batchDocs: 50 });
      const mem = await pageMemory(p);
      const searches = [];
      for (const candidates of BUDGETS) {
        const s = await p.call('searchIndex', { queries: QUERIES, candidates });
        delete s.tops;
        searches.push(s);
      }
      await p.call('closeIndex');
      await p.page.close();
      results.index.push({ N, storage, build, mem, searches });
    }
  }
  print('### The index at N windows of 512 tokens (colbert: \'none\'; dense int8, sparse f16 postings)\n');
  print(table(['windows', 'storage', 'add (windows/s)', 'memoryBytes', 'renderer RSS', 'JS heap', 'ArrayBuffers', 'per-page (UA)'],
    results.index.map(r => [r.N.toLocaleString('en'), r.storage, Math.round(r.build.windowsPerSecond), mb(r.build.stats.memoryBytes), mb(r.mem.rss), mb(r.mem.heapUsed), r.mem.backingStores == null ? 'n/a' : mb(r.mem.backingStores), r.mem.uasm == null ? 'n/a' : mb(r.mem.uasm)])));
  print('');
  print(table(['windows', 'storage', 'candidates / lane', 'reranked (p50)', 'search (no ColBERT)', 'dense stage', 'sparse stage', 'read lanes'],
    results.index.flatMap(r => r.searches.map(s => [r.N.toLocaleString('en'), r.storage, s.candidates, Math.round(s.reranked.p50), pp(s.wall), pp(s.dense), pp(s.sparse), pp(s.read)]))));
  print('');
}

// ── 3. ColBERT stages on a store of 512-token windows ────────────────────────────────────────
if (PARTS.has('rerank')) {
  results.rerank = [];
  const stores = [['int8', 'indexeddb', RERANK_WINDOWS], ['pooled', 'indexeddb', Math.min(RERANK_WINDOWS, 300)], ['int8', 'memory', RERANK_WINDOWS]];
  for (const [colbert, storage, M] of stores) { // pooled: fewer windows (pooling takes ~0.5 s a window)
    log(`rerank store: ${M} windows, colbert ${colbert}, ${storage}`);
    const p = await newPage();
    const build = await p.call('buildIndex', { name: `rerank-${colbert}`, storage, seed: SEED, windows: M, windowTokens: TOKENS, colbert, batchDocs: 5 });
    const searches = [];
    for (const candidates of BUDGETS) {
      const s = await p.call('searchIndex', { queries: Math.min(QUERIES, 50), candidates });
      delete s.tops;
      searches.push(s);
    }
    await p.call('closeIndex');
    await p.page.close();
    results.rerank.push({ colbert, storage, M, build, searches });
  }
  print('### ColBERT stages on stores of 512-token windows (511 ColBERT rows; pooled: 256)\n');
  print(table(['colbert', 'storage', 'windows', 'candidates / lane', 'reranked (p50)', 'read records', 'MaxSim', 'read + MaxSim per reranked window (p50)', 'add (windows/s)'],
    results.rerank.flatMap(r => r.searches.map(s => [r.colbert, r.storage, r.M, s.candidates, Math.round(s.reranked.p50), pp(s.read), pp(s.rerank), ms((s.read.p50 + s.rerank.p50) / s.reranked.p50), r.build.windowsPerSecond.toFixed(1)]))));
  print('');
}

if (results.index && results.rerank) {
  print('### Search time at N windows with ColBERT rerank: the dense and sparse stages measured at N, plus the read and MaxSim stages measured on the store of the same storage, scaled by the windows reranked at N over those reranked on the store (p95: the sum of the stages\' p95s, an upper estimate)\n');
  const rowsN = [];
  for (const r of results.index) {
    for (const rr of results.rerank.filter(x => x.storage === r.storage)) {
      r.searches.forEach((sN, i) => {
        const s = rr.searches[i], scale = Math.max(1, sN.reranked.p50 / s.reranked.p50);
        const p50 = sN.dense.p50 + sN.sparse.p50 + scale * (s.read.p50 + s.rerank.p50);
        const p95 = sN.dense.p95 + sN.sparse.p95 + scale * (s.read.p95 + s.rerank.p95);
        rowsN.push([r.N.toLocaleString('en'), r.storage, rr.colbert, sN.candidates, `${Math.round(sN.reranked.p50)} (store: ${Math.round(s.reranked.p50)})`, `${ms(p50)} / ${ms(p95)}`, p95 <= 150 ? 'yes' : 'no']);
      });
    }
  }
  print(table(['windows', 'storage', 'colbert', 'candidates / lane', 'reranked at N', 'search p50 / p95', 'p95 ≤ 150 ms'], rowsN));
  print('');

  print('### Storage per token (stats().bytes / stats().tokens; tokens with <s> and </s>)\n');
  const perToken = (label, st) => [label, ...['dense', 'sparse', 'colbert', 'tokens', 'text', 'docs', 'total'].map(k => (st.bytes[k] / st.tokens).toFixed(1))];
  const none = results.index.find(x => x.storage === 'indexeddb').build.stats;
  print(table(['colbert', 'dense', 'sparse', 'colbert', 'tokens (ids, spans)', 'text', 'docs', 'total bytes / token'],
    [perToken('none', none), ...results.rerank.filter(r => r.storage === 'indexeddb').map(r => perToken(r.colbert, r.build.stats))]));
  print('');
}

// ── 4. Agreement with the exhaustive f32 hybrid ranking ──────────────────────────────────────
if (PARTS.has('agreement')) {
  log(`agreement: exhaustive f32 ranking of ${AGREE_WINDOWS} windows of ${AGREE_TOKENS} tokens`);
  const truth = exhaustiveTop10({ seed: SEED, windows: AGREE_WINDOWS, tokens: AGREE_TOKENS, queries: QUERIES });
  results.agreement = { exhaustive: { ...truth, tops: undefined }, indexes: [] };
  for (const colbert of ['int8', 'pooled', 'none']) {
    log(`agreement: ${colbert}`);
    const p = await newPage();
    const build = await p.call('buildIndex', { name: `agree-${colbert}`, storage: 'memory', seed: SEED, windows: AGREE_WINDOWS, windowTokens: AGREE_TOKENS, colbert, batchDocs: 50 });
    // int8 also with every window reranked: what quantization alone costs, without stage 1's misses
    for (const candidates of colbert === 'int8' ? [64, AGREE_WINDOWS] : [64]) {
      const s = await p.call('searchIndex', { queries: QUERIES, candidates });
      const overlap = s.tops.map((top, i) => top.filter(id => truth.tops[i].includes(id)).length / 10);
      const same1 = s.tops.filter((top, i) => top[0] === truth.tops[i][0]).length / QUERIES;
      const planted = s.targetRanks.filter(r => r >= 0).length / QUERIES;
      results.agreement.indexes.push({ colbert, candidates, overlap: overlap.reduce((a, b) => a + b, 0) / QUERIES, top1: same1, planted, search: s.wall, reranked: s.reranked.p50, add: build.windowsPerSecond });
    }
    await p.call('closeIndex');
    await p.page.close();
  }
  print(`### Two-stage top-10 vs exhaustive f32 hybrid top-10 (${AGREE_WINDOWS.toLocaleString('en')} windows of ${AGREE_TOKENS} tokens, ${QUERIES} queries, memory storage)\n`);
  print(`Exhaustive ranking: f32 ColBERT computed exactly for ${(truth.exactShare * 100).toFixed(1)}% of the windows (the rest ruled out by the int8 bound); the planted document is in its top-10 in ${(truth.planted * 100).toFixed(0)}% of the queries; ranks 2 to 10 (the planted document's topic) lie within ${truth.spread.toFixed(3)} of each other on average, so small score changes reorder them.\n`);
  print(table(['colbert', 'candidates / lane', 'top-10 overlap (mean)', 'same top-1', 'planted doc in top-10', 'reranked (p50)', 'search p50 / p95', 'add (windows/s)'],
    results.agreement.indexes.map(a => [a.colbert, a.candidates === AGREE_WINDOWS ? 'all' : a.candidates, `${(a.overlap * 100).toFixed(1)}%`, `${(a.top1 * 100).toFixed(0)}%`, `${(a.planted * 100).toFixed(0)}%`, Math.round(a.reranked), pp(a.search), a.add.toFixed(0)])));
  print('');
}

await browser.close();
server.close();
results.finished = new Date().toISOString();
if (opt.json) {
  fs.mkdirSync(path.dirname(opt.json), { recursive: true });
  fs.writeFileSync(opt.json, JSON.stringify(results, null, 1));
  log(`wrote ${opt.json}`);
}

/** The exhaustive f32 hybrid top-10 documents of queries 0..queries-1 (FlagEmbedding's weights,
 *  a document scored by its best window, ties by id as the index breaks them). ColBERT: int8
 *  MaxSim of every window, off the f32 value by at most mean_i |q_i|_1 * max_j scale_j / 2 (+ the
 *  kernel's i16 rounding); windows whose upper bound reaches the 10th best document's lower bound
 *  get the exact f32 MaxSim of their regenerated rows. */
function exhaustiveTop10({ seed, windows, tokens, queries }) {
  const c = makeCorpus({ seed, windows, tokens });
  const dense = [], sparse = [], codes = [], maxScale = new Float32Array(windows);
  for (let w = 0; w < windows; w++) {
    dense.push(c.dense(w));
    const s = c.sparse(w);
    sparse.push({ ids: s.ids, weights: s.weights });
    const q = quantizeRows(c.colbert(w, tokens - 1).data, c.dim);
    codes.push(q);
    maxScale[w] = q.scales.reduce((a, b) => Math.max(a, b), 0);
  }
  const W = DEFAULT_WEIGHTS, wsum = W.dense + W.sparse + W.colbert;
  const docOf = w => c.docId(c.docOf(w));
  const tops = [];
  let exact = 0, planted = 0, spread = 0;
  for (let i = 0; i < queries; i++) {
    const q = c.query(i), qRows = q.colbert.rows;
    let l1 = 0;
    for (let r = 0; r < qRows; r++) for (let k = 0; k < c.dim; k++) l1 += Math.abs(q.colbert.data[r * c.dim + k]);
    l1 /= qRows;
    const lo = new Float64Array(windows), hi = new Float64Array(windows);
    for (let w = 0; w < windows; w++) {
      const approx = maxSimInt8Simd(q.colbert.data, codes[w].codes, codes[w].scales, c.dim);
      const err = l1 * maxScale[w] / 2 + 1e-4;
      const rest = W.dense * denseScore(q.dense, dense[w]) + W.sparse * lexicalScore(q.sparse, sparse[w]);
      lo[w] = (rest + W.colbert * (approx - err)) / wsum;
      hi[w] = (rest + W.colbert * (approx + err)) / wsum;
    }
    // the 10th best document's lower bound
    const docLo = new Map();
    for (let w = 0; w < windows; w++) docLo.set(docOf(w), Math.max(docLo.get(docOf(w)) ?? -Infinity, lo[w]));
    const floor = [...docLo.values()].sort((a, b) => b - a)[9];
    const docScore = new Map();
    for (let w = 0; w < windows; w++) {
      if (hi[w] < floor) continue;
      exact++;
      const s = { dense: denseScore(q.dense, dense[w]), sparse: lexicalScore(q.sparse, sparse[w]), colbert: colbertScore(q.colbert.data, c.colbert(w, tokens - 1).data, c.dim) };
      const h = weightedScore(s, W);
      if (h > (docScore.get(docOf(w)) ?? -Infinity)) docScore.set(docOf(w), h);
    }
    const ranked = [...docScore].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 10);
    spread += (ranked[1][1] - ranked[9][1]) / queries;
    const top = ranked.map(([id]) => id);
    if (top.includes(q.targetDoc)) planted++;
    tops.push(top);
    if (i % 10 === 9) log(`exhaustive ranking: ${i + 1} / ${queries} queries`);
  }
  return { tops, exactShare: exact / (windows * queries), planted: planted / queries, spread };
}
