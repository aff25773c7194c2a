// The browser side of scripts/bench-index.mjs: runs in a page of headless Chromium, driven step by
// step by page.evaluate (window.benchIndex). Each step returns plain JSON: times in ms, sizes in
// bytes. Data: scripts/index-synth.mjs (seeded, so Node and the page build the same corpus).
import { makeCorpus, pairPool } from './index-synth.mjs';
import { DenseLaneSimd, DenseLaneJS, maxSimInt8Simd, maxSimInt8JS, quantizeRows, KERNELS } from '../pkg/src/index/kernels.js';
import { Postings, TopK } from '../pkg/src/index/postings.js';
import { VOCAB_SIZE } from '../pkg/src/index/checks.js';
import { openIndex, deleteIndex } from '../pkg/src/index/hybrid.js';

const S = {}; // what one step leaves for the next
const now = () => performance.now();
const yieldNow = () => new Promise(r => setTimeout(r, 0));

/** p50 / p95 / mean of a list of times (nearest rank). */
export function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = q => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
  return { n: s.length, p50: at(0.5), p95: at(0.95), mean: s.reduce((a, b) => a + b, 0) / s.length };
}

/** A checksum of some of the corpus's data (the same in Node and the page, or the exhaustive
 *  ranking computed in Node is not about the page's corpus). */
export function checksum({ seed, windows, tokens }) {
  const c = makeCorpus({ seed, windows, tokens });
  let h = 0;
  const mix = (x) => { h = (Math.imul(h ^ x, 0x9e3779b1) + 0x7f4a7c15) >>> 0; };
  const f32 = new Uint32Array(1);
  const floats = a => { const v = new Float32Array(f32.buffer); for (let i = 0; i < a.length; i += 7) { v[0] = a[i]; mix(f32[0]); } };
  for (const w of [0, 1, windows >> 1, windows - 1]) {
    floats(c.dense(w));
    const s = c.sparse(w);
    s.ids.forEach(mix);
    floats(s.weights);
    floats(c.colbert(w, Math.min(tokens - 1, 8)).data);
  }
  for (const i of [0, 1, 2]) {
    const q = c.query(i);
    mix(q.target);
    floats(q.dense);
    q.sparse.ids.forEach(mix);
    floats(q.sparse.weights);
    floats(q.colbert.data);
  }
  return h;
}

export function environment() {
  return { kernels: KERNELS, userAgent: navigator.userAgent, crossOriginIsolated: self.crossOriginIsolated === true, cores: navigator.hardwareConcurrency };
}

export async function webgpuAdapter() {
  if (!navigator.gpu) return null;
  const a = await navigator.gpu.requestAdapter();
  if (!a) return null;
  const i = a.info ?? {};
  return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description };
}

// ── Kernels: the lanes alone ──────────────────────────────────────────────────────────────────
/** The dense lane (SIMD) and sparse postings (the index's Postings) of `windows` windows. */
export async function buildLanes({ seed, windows }) {
  const c = S.corpus = makeCorpus({ seed, windows });
  const lane = S.lane = new DenseLaneSimd(c.dim);
  const postings = S.postings = new Postings(VOCAB_SIZE);
  const dense = new Float32Array(c.dim);
  let t = now(), laneMs = 0, postingsMs = 0;
  const t0 = t;
  for (let w = 0; w < windows; w++) {
    const q = quantizeRows(c.dense(w, dense), c.dim), s = c.sparse(w);
    let a = now();
    lane.push(q.codes, q.scales[0]);
    let b = now();
    postings.add(w, s.ids, s.weights);
    laneMs += b - a;
    postingsMs += now() - b;
    if (now() - t > 200) { await yieldNow(); t = now(); }
  }
  return {
    windows, buildMs: now() - t0, laneAddMs: laneMs, postingsAddMs: postingsMs,
    laneBytes: lane.bytes, laneCapacity: lane.capacity, postingsBytes: postings.bytes, postings: postings.size,
  };
}

/** Dense-lane scans: SIMD for every query, JS for `jsQueries` of them (same scores up to the
 *  query's i16 rounding: the largest difference is returned). */
export function scanDense({ queries, jsQueries }) {
  const c = S.corpus, lane = S.lane, n = lane.count;
  const out = new Float32Array(n), ref = new Float32Array(n);
  const qs = Array.from({ length: queries }, (_, i) => c.query(i).dense);
  const simd = [], js = [];
  lane.scores(qs[0], out); // warm-up (tier-up)
  for (const q of qs) { const t = now(); lane.scores(q, out); simd.push(now() - t); }
  const jsLane = new DenseLaneJS(c.dim, n);
  const codes = lane.codes, scales = lane.scales;
  for (let s = 0; s < n; s++) jsLane.push(codes.subarray(s * c.dim, (s + 1) * c.dim), scales[s]);
  jsLane.scores(qs[0], ref);
  let maxDiff = 0;
  for (const q of qs.slice(0, jsQueries)) {
    const t = now();
    jsLane.scores(q, ref);
    js.push(now() - t);
    lane.scores(q, out);
    for (let s = 0; s < n; s++) maxDiff = Math.max(maxDiff, Math.abs(out[s] - ref[s]));
  }
  return { simd: summary(simd), js: summary(js), maxDiff, jsLaneBytes: jsLane.bytes };
}

/** The sparse lane as the index's stage 2 runs it: accumulate the query's postings, take the best
 *  `candidates`, reset the scratch. */
export function scanSparse({ queries, candidates }) {
  const c = S.corpus, p = S.postings, n = S.lane.count;
  const acc = new Float32Array(n), seen = new Uint8Array(n), touched = new Uint32Array(n);
  const times = [], reached = [];
  for (let i = 0; i < queries; i++) {
    const q = c.query(i).sparse;
    const t = now();
    const m = p.accumulate(q.ids, q.weights, acc, seen, touched);
    const top = new TopK(candidates);
    for (let j = 0; j < m; j++) { const w = touched[j]; top.push(w, acc[w]); acc[w] = 0; seen[w] = 0; }
    top.sorted();
    times.push(now() - t);
    reached.push(m);
  }
  return { ms: summary(times), reached: summary(reached) };
}

export function dropLanes() {
  delete S.lane;
  delete S.postings;
  delete S.corpus;
}

/** MaxSim over `budgets` candidates of `rows` int8 rows (and pooled to half), `qRows` query rows:
 *  SIMD `reps` times, JS `jsReps` times, each rep another query. */
export async function maxsim({ seed, budgets, rows, qRows, reps, jsReps }) {
  const c = makeCorpus({ seed, windows: 100_000 });
  const most = Math.max(...budgets);
  const layouts = { int8: [], pooled: [] };
  for (let w = 0; w < most; w++) {
    const x = c.colbert(w * 97, rows);
    layouts.int8.push(quantizeRows(x.data, c.dim));
    layouts.pooled.push(quantizeRows(pairPool(x).data, c.dim));
    if (w % 8 === 7) await yieldNow();
  }
  const queries = Array.from({ length: Math.max(reps, jsReps) + 1 }, (_, i) => c.query(i, { rows: qRows }).colbert.data);
  const out = [];
  for (const [layout, cands] of Object.entries(layouts)) {
    for (const budget of budgets) {
      const run = (fn, q) => { let s = 0; for (let j = 0; j < budget; j++) s += fn(q, cands[j].codes, cands[j].scales, c.dim); return s; };
      run(maxSimInt8Simd, queries[0]);
      const simd = [], js = [];
      let maxDiff = 0;
      for (let r = 1; r <= reps; r++) { const t = now(); run(maxSimInt8Simd, queries[r]); simd.push(now() - t); }
      for (let r = 1; r <= jsReps; r++) {
        const t = now();
        const a = run(maxSimInt8JS, queries[r]);
        js.push(now() - t);
        maxDiff = Math.max(maxDiff, Math.abs(a - run(maxSimInt8Simd, queries[r])) / budget);
        await yieldNow();
      }
      out.push({ layout, rows: cands[0].scales.length, budget, simd: summary(simd), js: summary(js), maxDiff });
    }
  }
  return out;
}

// ── The index ─────────────────────────────────────────────────────────────────────────────────
/** Builds index `name` of `windows` windows (documents of 4 windows of `windowTokens` tokens) in
 *  `storage`; add() in batches of `batchDocs` documents. Times add() alone (not the generator). */
export async function buildIndex({ name, storage, seed, windows, windowTokens, colbert, batchDocs }) {
  await deleteIndex(name, { storage });
  const c = S.indexCorpus = makeCorpus({ seed, windows, tokens: windowTokens });
  const fingerprint = { dim: c.dim, probe: c.dense(0) };
  const index = S.index = await openIndex(name, { storage, colbert, fingerprint });
  let addMs = 0, genMs = 0;
  const t0 = now();
  for (let d0 = 0; d0 < c.docs; d0 += batchDocs) {
    let t = now();
    const batch = [];
    for (let d = d0; d < Math.min(c.docs, d0 + batchDocs); d++) batch.push(c.document(d, { windowTokens, colbert: colbert !== 'none' }));
    genMs += now() - t;
    t = now();
    await index.add(batch);
    addMs += now() - t;
  }
  const stats = index.stats();
  return { name, storage, colbert, windows, windowTokens, addMs, genMs, wallMs: now() - t0, windowsPerSecond: windows / (addMs / 1000), stats: { ...stats, fingerprint: undefined } };
}

/** Searches the built index with queries 0..queries-1: per query its timings (the index's per
 *  stage, and the call's wall time), candidates reranked, top-k document ids, the planted
 *  document's rank. */
export async function searchIndex({ queries, candidates, k = 10 }) {
  const c = S.indexCorpus, index = S.index;
  const rows = [];
  await index.search(c.query(0), { k, candidates }); // warm-up
  for (let i = 0; i < queries; i++) {
    const q = c.query(i);
    const t = now();
    const r = await index.search(q, { k, candidates });
    const wall = now() - t;
    rows.push({ wall, ...r.timings, candidates: r.candidates, mode: r.colbert, top: r.hits.map(h => h.id), targetRank: r.hits.findIndex(h => h.id === q.targetDoc) });
  }
  const stage = key => summary(rows.map(r => r[key]));
  return {
    candidates, k, colbert: rows[0]?.mode,
    wall: stage('wall'), total: stage('total'), dense: stage('dense'), sparse: stage('sparse'), read: stage('read'), rerank: stage('colbert'),
    reranked: summary(rows.map(r => r.candidates)),
    tops: rows.map(r => r.top), targetRanks: rows.map(r => r.targetRank),
  };
}

export async function closeIndex({ drop = true } = {}) {
  const index = S.index;
  if (!index) return;
  index.close();
  if (drop) await deleteIndex(index.name, { storage: index.storage });
  delete S.index;
  delete S.indexCorpus;
}

if (typeof window !== 'undefined') window.benchIndex = { summary, checksum, environment, webgpuAdapter, buildLanes, scanDense, scanSparse, dropLanes, maxsim, buildIndex, searchIndex, closeIndex };
