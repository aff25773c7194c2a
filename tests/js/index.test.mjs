// The hybrid index of the npm package (pkg/src/index/) on memory storage, in Node: add / replace /
// remove / get / stats / export / import, atomic writes (abort mid-add), bad input and crafted
// files (each refused with its kind, the index unchanged), pooling, f16, compaction, two
// instances of one index, and the agreement of the two-stage search with an exhaustive f32
// ranking (scoring.js) on a synthetic corpus with planted relevant windows.
// Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openIndex, deleteIndex, sameModel, DEFAULT_WEIGHTS, denseScore, lexicalScore, colbertScore, weightedScore } from '../../pkg/src/index.js';
import { poolRows } from '../../pkg/src/index/pool.js';
import { toF16, decodeF16, encodeF16 } from '../../pkg/src/index/f16.js';
import { encodeSpans, decodeSpans } from '../../pkg/src/index/records.js';
import { rng, randomUnit, mix, simpleDoc, agreementCorpus, normalize, gauss } from './corpus.mjs';

const DIM = 64;
let seq = 0;
/** A fresh memory index (a unique name) with a random fingerprint of width `dim`. */
async function fresh(options = {}, dim = DIM) {
  const fingerprint = { dim, probe: randomUnit(rng(dim), dim) };
  const name = `test-${process.pid}-${seq++}`;
  const index = await openIndex(name, { storage: 'memory', fingerprint, ...options });
  return { index, name, fingerprint };
}
const docs = (n, { seed = 1, dim = DIM, prefix = 'd', ...o } = {}) => {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => simpleDoc(r, `${prefix}${i}`, { dim, windows: 1 + (i % 3), ...o }));
};
const query = (seed, dim = DIM) => simpleDoc(rng(seed), 'q', { dim, windows: 1 }).embedding.windows[0];

/** What must not change after a failed call: stats (all of it) and a search's hits. */
async function snapshot(index, q) {
  const r = await index.search(q, { k: 20 });
  return { stats: index.stats(), hits: r.hits };
}
async function rejectsKind(p, kind, pattern) {
  await assert.rejects(p, e => {
    assert.equal(e.kind, kind, `kind ${e.kind} (${e.message})`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}
const cos = (a, b) => denseScore(a, b) / Math.sqrt(denseScore(a, a) * denseScore(b, b));

// ── Kernels of the index's own ────────────────────────────────────────────────────────────────
test('f16: round to nearest even, specials, relative error below 2^-11', () => {
  assert.equal(toF16(1), 0x3c00);
  assert.equal(toF16(-2), 0xc000);
  assert.equal(toF16(65504), 0x7bff);
  assert.equal(toF16(65520), 0x7c00); // rounds up to Infinity
  assert.equal(toF16(2 ** -24), 0x0001); // the smallest subnormal
  assert.equal(toF16(2 ** -26), 0x0000);
  assert.equal(toF16(1 + 2 ** -11), 0x3c00); // a tie: to even
  assert.equal(toF16(1 + 3 * 2 ** -11), 0x3c02);
  assert.ok(Number.isNaN(decodeF16(new Uint16Array([toF16(NaN)]))[0]));
  const r = rng(3), v = Float32Array.from({ length: 10_000 }, () => gauss(r) * 10);
  const back = decodeF16(encodeF16(v));
  for (let i = 0; i < v.length; i++) assert.ok(Math.abs(back[i] - v[i]) <= Math.abs(v[i]) * 2 ** -11 + 2 ** -25, `${v[i]} -> ${back[i]}`);
});

test('ColBERT spans: varint coding round trip; crafted bytes are refused', () => {
  const spans = Uint32Array.from([0, 5, 5, 9, 3, 4, 100_000, 100_200, 100_200, 100_200]);
  const bytes = encodeSpans(spans);
  assert.ok(bytes.length < spans.length * 2, `${bytes.length} bytes for ${spans.length} values`);
  assert.deepEqual(decodeSpans(bytes, 5), spans);
  assert.equal(decodeSpans(bytes, 4), null, 'bytes left over');
  assert.equal(decodeSpans(bytes, 6), null, 'runs out');
  assert.equal(decodeSpans(Uint8Array.from([3, 1]), 1), null, 'a start before 0');
  assert.equal(decodeSpans(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0]), 1), null, 'an endless varint');
});

test('pooling: rows -> ceil(rows / factor), unit rows, near-duplicate rows merged together', () => {
  const r = rng(5), dim = 128;
  for (const [rows, factor] of [[1, 2], [2, 2], [5, 2], [16, 2], [17, 3], [40, 4]]) {
    const data = new Float32Array(rows * dim);
    for (let i = 0; i < rows; i++) data.set(randomUnit(r, dim), i * dim);
    const p = poolRows(data, rows, dim, factor);
    assert.equal(p.rows, Math.ceil(rows / factor), `${rows} rows, factor ${factor}`);
    assert.equal(p.data.length, p.rows * dim);
    assert.equal(p.assign.length, rows);
    for (let i = 0; i < p.rows; i++) assert.ok(Math.abs(Math.hypot(...p.data.subarray(i * dim, (i + 1) * dim)) - 1) < 1e-5);
    assert.ok(p.assign.every(a => a < p.rows));
    assert.equal(new Set(p.assign).size, p.rows, 'every pooled row stands for a row');
  }
  // 8 distinct directions, each twice with a little noise, shuffled: pooling by 2 gives back the 8.
  const base = Array.from({ length: 8 }, () => randomUnit(r, dim));
  const order = [3, 0, 5, 1, 7, 2, 6, 4, 0, 1, 2, 3, 4, 5, 6, 7];
  const data = new Float32Array(16 * dim);
  order.forEach((b, i) => data.set(mix(r, dim, [[1, base[b]]], 0.05), i * dim));
  const p = poolRows(data, 16, dim, 2);
  assert.equal(p.rows, 8);
  order.forEach((b, i) => order.forEach((b2, j) => assert.equal(p.assign[i] === p.assign[j], b === b2, `rows ${i} and ${j}`)));
  order.forEach((b, i) => assert.ok(cos(p.data.subarray(p.assign[i] * dim, (p.assign[i] + 1) * dim), base[b]) > 0.99));
});

// ── The API ───────────────────────────────────────────────────────────────────────────────────
test('add, get, replace, remove, stats; search finds the documents and groups windows', async () => {
  const { index } = await fresh();
  const items = docs(12);
  assert.deepEqual(await index.add(items), { added: 12, replaced: 0 });
  const st = index.stats();
  assert.equal(st.documents, 12);
  assert.equal(st.windows, items.reduce((n, d) => n + d.embedding.windows.length, 0));
  assert.equal(st.tokens, items.reduce((n, d) => n + d.embedding.windows.reduce((m, w) => m + w.inputIds.length, 0), 0));
  assert.deepEqual(st.options, { dense: 'int8', colbert: 'int8', poolFactor: 2, dim: DIM });
  assert.equal(st.bytes.total, ['dense', 'sparse', 'colbert', 'tokens', 'text', 'docs'].reduce((s, p) => s + st.bytes[p], 0));
  // get(): the records back, vectors dequantized.
  const src = items[5], got = await index.get(src.id);
  assert.equal(got.id, src.id);
  assert.equal(got.text, src.text);
  assert.deepEqual(got.meta, src.meta);
  assert.equal(got.windows.length, src.embedding.windows.length);
  got.windows.forEach((w, k) => {
    const s = src.embedding.windows[k];
    for (const f of ['start', 'end', 'tokenStart', 'tokenEnd']) assert.equal(w[f], s[f]);
    assert.deepEqual(w.inputIds, s.inputIds);
    assert.deepEqual(w.colbertSpans, s.colbertSpans);
    assert.deepEqual(w.sparse.ids, s.sparse.ids);
    assert.deepEqual(w.sparse.weights, s.sparse.weights);
    assert.ok(cos(w.dense, s.dense) > 0.9995);
    assert.equal(w.colbert.rows, s.colbert.rows);
    for (let r = 0; r < s.colbert.rows; r++) assert.ok(cos(w.colbert.data.subarray(r * DIM, (r + 1) * DIM), s.colbert.data.subarray(r * DIM, (r + 1) * DIM)) > 0.999);
  });
  assert.equal(await index.get('nope'), null);
  const one = await index.getWindow(src.id, src.embedding.windows.length - 1);
  assert.equal(one.window.start, src.embedding.windows.at(-1).start);
  assert.equal(one.text, src.text);
  assert.equal(await index.getWindow(src.id, 99), null);
  // A document's own window as the query finds that document first, at that window.
  const q = items[7].embedding.windows[1];
  const r = await index.search(q, { k: 5 });
  assert.equal(r.hits[0].id, 'd7');
  assert.equal(r.hits[0].window.index, 1);
  assert.ok(r.hits[0].dense > 0.999 && r.hits[0].colbert > 0.99);
  assert.equal(new Set(r.hits.map(h => h.id)).size, r.hits.length, 'one hit per document');
  for (const k of ['dense', 'sparse', 'read', 'colbert', 'total']) assert.ok(r.timings[k] >= 0);
  assert.equal(r.colbert, 'stored');
  assert.ok(r.candidates >= 5);
  // Replace d7 by a one-window document: its old second window is gone from search and storage.
  const repl = simpleDoc(rng(99), 'd7', { dim: DIM, windows: 1 });
  assert.deepEqual(await index.add([repl]), { added: 0, replaced: 1 });
  assert.equal(index.stats().documents, 12);
  assert.equal((await index.get('d7')).windows.length, 1);
  assert.equal((await index.get('d7')).text, repl.text);
  const r2 = await index.search(q, { k: 12 });
  assert.ok(!r2.hits.some(h => h.id === 'd7' && h.window.index === 1));
  const r3 = await index.search(repl.embedding.windows[0], { k: 1 });
  assert.equal(r3.hits[0].id, 'd7');
  // Remove.
  assert.deepEqual(await index.remove(['d7', 'd3', 'nope', 'd3']), { removed: 2 });
  assert.equal(index.stats().documents, 10);
  assert.equal(await index.get('d3'), null);
  assert.ok(!(await index.search(repl.embedding.windows[0], { k: 20 })).hits.some(h => h.id === 'd7' || h.id === 'd3'));
  // documents(): every document, as get() gives it.
  const all = [];
  for await (const d of index.documents()) all.push(d.id);
  assert.deepEqual(all, items.map(d => d.id).filter(id => id !== 'd7' && id !== 'd3').sort());
  // list(): ids, meta and window counts without the vectors.
  const listed = await index.list();
  assert.deepEqual(listed.map(d => d.id), all);
  for (const d of listed) {
    const full = await index.get(d.id);
    assert.deepEqual({ meta: d.meta, windows: d.windows }, { meta: full.meta, windows: full.windows.length });
  }
  await index.clear();
  assert.equal(index.stats().documents, 0);
  assert.deepEqual((await index.search(q)).hits, []);
  index.close();
  await rejectsKind(index.search(q), 'input', /closed/);
});

test('weights: a mode of weight 0 is not a candidate lane; rrf fuses per-mode rankings', async () => {
  const { index } = await fresh();
  const items = docs(30, { seed: 2 });
  await index.add(items);
  const q = items[4].embedding.windows[0];
  const lexical = await index.search(q, { weights: { dense: 0, sparse: 1, colbert: 0 }, k: 5 });
  assert.equal(lexical.timings.dense, 0);
  assert.equal(lexical.colbert, 'off');
  assert.equal(lexical.hits[0].colbert, null);
  assert.equal(lexical.hits[0].score, lexical.hits[0].sparse);
  const ranked = lexical.hits.map(h => h.sparse);
  assert.deepEqual(ranked, [...ranked].sort((a, b) => b - a));
  const denseOnly = await index.search(q, { weights: { dense: 1, sparse: 0, colbert: 0 }, k: 5 });
  assert.equal(denseOnly.timings.sparse, 0);
  assert.equal(denseOnly.hits[0].id, 'd4');
  const colbertOnly = await index.search(q, { weights: { dense: 0, sparse: 0, colbert: 1 }, k: 5 });
  assert.equal(colbertOnly.hits[0].id, 'd4');
  assert.equal(colbertOnly.hits[0].score, colbertOnly.hits[0].colbert);
  const rrf = await index.search(q, { rrf: true, k: 10 });
  const plain = await index.search(q, { k: 10 });
  assert.equal(rrf.hits[0].id, 'd4');
  assert.ok(rrf.hits[0].score <= 3 / 61 + 1e-12 && rrf.hits[0].score > 0, `fused score ${rrf.hits[0].score}`);
  assert.deepEqual(new Set(rrf.hits.map(h => h.hybrid)).size, rrf.hits.length);
  assert.ok(plain.hits.every((h, i) => i === 0 || h.score <= plain.hits[i - 1].score));
});

test('dense f16: stored as f16 (2 bytes a value), scanned as int8, candidates rescored from the f16', async () => {
  const { index } = await fresh({ dense: 'f16', colbert: 'none' });
  const items = docs(10, { seed: 12 });
  await index.add(items);
  const st = index.stats();
  assert.equal(st.bytes.dense, st.windows * 2 * DIM);
  const w = items[3].embedding.windows[0];
  const r = await index.search(w, { k: 3 });
  assert.equal(r.hits[0].id, 'd3');
  assert.equal(r.colbert, 'skipped');
  assert.equal(r.hits[0].colbert, null);
  const stored = (await index.get('d3')).windows[0].dense;
  assert.equal(r.hits[0].dense, denseScore(w.dense, stored), 'the dense score is the stored f16 vector\'s');
  assert.ok(Math.abs(r.hits[0].dense - 1) < 1e-3);
  for (let k = 0; k < DIM; k++) assert.ok(Math.abs(stored[k] - w.dense[k]) <= Math.abs(w.dense[k]) * 2 ** -11 + 1e-7);
});

test('bad input to add(): clear errors of kind input, the index unchanged', async () => {
  const { index } = await fresh();
  await index.add(docs(6, { seed: 4 }));
  const q = query(40);
  const before = await snapshot(index, q);
  const good = () => simpleDoc(rng(8), 'new', { dim: DIM, windows: 2 });
  const w0 = d => d.embedding.windows[0];
  const cases = {
    'not an array': [{ items: 'x' }, /array/],
    'wrong dense width': [d => { w0(d).dense = randomUnit(rng(1), DIM + 1); }, /dense holds 65 values/],
    'NaN in dense': [d => { w0(d).dense[3] = NaN; }, /dense holds NaN at \[3\]/],
    'Infinity in ColBERT': [d => { w0(d).colbert.data[10] = Infinity; }, /colbert\.data holds Infinity/],
    'non-unit dense': [d => { w0(d).dense = w0(d).dense.map(x => x * 2); }, /dense has length 2/],
    'non-unit ColBERT row': [d => { w0(d).colbert.data[DIM] *= 0.5; w0(d).colbert.data[DIM + 1] *= 0.5; for (let k = 0; k < DIM; k++) w0(d).colbert.data[DIM + k] *= 0.5; }, /colbert\.data row 1 has length/],
    'ColBERT of another width': [d => { w0(d).colbert.dim = 32; }, /colbert\.dim must be 64/],
    'ColBERT rows not one per token': [d => { w0(d).colbert.rows -= 1; }, /colbert\.rows must be/],
    'no ColBERT': [d => { delete w0(d).colbert; }, /colbert is missing/],
    'no colbertSpans': [d => { delete w0(d).colbertSpans; }, /colbertSpans is missing: encode with colbertSpans: true/],
    'span past the text': [d => { w0(d).colbertSpans[1] = d.text.length + 1; }, /not inside the text/],
    'window span past the text': [d => { w0(d).end = d.text.length + 5; }, /end must be a whole number/],
    'sparse id out of the vocabulary': [d => { w0(d).sparse.ids[0] = 250_002; }, /sparse\.ids holds 250002/],
    'a repeated sparse id': [d => { w0(d).sparse.ids[1] = w0(d).sparse.ids[0]; }, /repeats a token id/],
    'a negative lexical weight': [d => { w0(d).sparse.weights[0] = -0.1; }, /weights are above 0/],
    'no sparse': [d => { delete w0(d).sparse; }, /encode with sparse: true/],
    'inputIds without <s>': [d => { w0(d).inputIds[0] = 5; }, /must start with <s>/],
    'an input id out of the vocabulary': [d => { w0(d).inputIds[2] = 300_000; }, /inputIds holds 300000/],
    'no windows': [d => { d.embedding.windows = []; }, /1 to 100000 windows/],
    'empty id': [d => { d.id = ''; }, /id is empty/],
    'id not text': [d => { d.id = 42; }, /id must be text/],
    'meta that is not JSON': [d => { d.meta = { big: 10n }; }, /meta cannot be stored as JSON/],
    'text not a string': [d => { d.text = null; }, /text must be text/],
  };
  for (const [name, [edit, pattern]] of Object.entries(cases)) {
    let items;
    if (typeof edit === 'function') { const d = good(); edit(d); items = [docs(1, { seed: 9, prefix: 'ok' })[0], d]; } else items = edit.items;
    await rejectsKind(index.add(items), 'input', pattern).catch(e => { throw new Error(`${name}: ${e.message}`); });
  }
  // Two items with one id.
  await rejectsKind(index.add([good(), good()]), 'input', /items\[1\] repeats the id “new” of items\[0\]/);
  assert.deepEqual(await snapshot(index, q), before);
});

test('bad input to search(), openIndex() and the fingerprint check', async () => {
  const { index, name, fingerprint } = await fresh();
  // An empty index: no hits, no error.
  const empty = await index.search(query(1), { k: 3 });
  assert.deepEqual(empty.hits, []);
  assert.equal(empty.candidates, 0);
  await index.add(docs(5));
  const q = query(2);
  await rejectsKind(index.search({ ...q, dense: new Float32Array(DIM + 1) }), 'input', /dense holds 65 values/);
  await rejectsKind(index.search({ ...q, dense: q.dense.map(x => x * 3) }), 'input', /dense has length/);
  await rejectsKind(index.search({ dense: q.dense, colbert: q.colbert }), 'input', /sparse is missing, and weights\.sparse is 0\.2/);
  await rejectsKind(index.search({ dense: q.dense, sparse: q.sparse }), 'input', /colbert is missing/);
  assert.equal((await index.search({ dense: q.dense, sparse: q.sparse }, { weights: { colbert: 0 } })).colbert, 'off');
  await rejectsKind(index.search(q, { weights: { dense: 0, sparse: 0, colbert: 0 } }), 'input', /above 0/);
  await rejectsKind(index.search(q, { weights: { dense: -1 } }), 'input', /weights\.dense/);
  await rejectsKind(index.search(q, { k: 0 }), 'input', /k must be/);
  await rejectsKind(index.search(q, { candidates: 1.5 }), 'input', /candidates must be/);
  await rejectsKind(index.search(null), 'input', /the query/);
  await rejectsKind(index.remove([3]), 'input', /ids\[0\]/);
  // Fingerprints.
  const other = { dim: DIM, probe: randomUnit(rng(1234), DIM) };
  assert.ok(!sameModel(fingerprint, other));
  assert.ok(sameModel(fingerprint, { dim: DIM, probe: mix(rng(5), DIM, [[1, fingerprint.probe]], 0.01) }), 'a rounding difference is the same model');
  await rejectsKind(openIndex(name, { storage: 'memory', fingerprint: other }), 'model', /another model/);
  await rejectsKind(openIndex(name, { storage: 'memory', fingerprint: { dim: 32, probe: randomUnit(rng(1), 32) } }), 'model');
  await rejectsKind(openIndex(`${name}-new`, { storage: 'memory' }), 'input', /does not exist yet: give options\.fingerprint/);
  assert.equal(await deleteIndex(`${name}-new`, { storage: 'memory' }), false, 'a refused open leaves nothing behind');
  await rejectsKind(openIndex('x', { storage: 'memory', fingerprint: { dim: DIM, probe: new Float32Array(DIM) } }), 'input', /probe has length 0/);
  await rejectsKind(openIndex('x', { storage: 'memory', fingerprint, colbert: 'float' }), 'input', /options\.colbert/);
  await rejectsKind(openIndex('', { storage: 'memory', fingerprint }), 'input', /name/);
  await rejectsKind(openIndex('x', { storage: 'disk', fingerprint }), 'input', /storage/);
  await rejectsKind(openIndex('x', { storage: 'indexeddb', fingerprint }), 'input', /no IndexedDB/);
  // The same fingerprint reopens it; its stored options win over the ones given.
  const again = await openIndex(name, { storage: 'memory', fingerprint, colbert: 'none' });
  assert.equal(again.stats().options.colbert, 'int8');
  assert.equal(again.stats().documents, 5);
  assert.ok(await deleteIndex(name, { storage: 'memory' }));
  await rejectsKind(again.search(q), 'input', /deleted/);
});

test('abort: before, and in the middle of a large add(): AbortError, the index unchanged', async () => {
  const { index } = await fresh({}, 1024);
  await index.add(docs(4, { dim: 1024 }));
  const q = query(3, 1024);
  const before = await snapshot(index, q);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(index.add(docs(2, { dim: 1024, prefix: 'x' }), { signal: ac.signal }), { name: 'AbortError' });
  // 300 documents of 1-3 windows of 48 tokens at 1024 dims take far longer than 30 ms to prepare.
  const big = docs(300, { dim: 1024, rows: 48, seed: 11, prefix: 'big' });
  const ac2 = new AbortController();
  const t0 = performance.now();
  setTimeout(() => ac2.abort(), 30);
  await assert.rejects(index.add(big, { signal: ac2.signal }), { name: 'AbortError' });
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `aborted after ${ms.toFixed(0)} ms`);
  assert.deepEqual(await snapshot(index, q), before);
  // The same add without an abort goes through.
  const t1 = performance.now();
  await index.add(big);
  console.log(`add of 300 documents (${index.stats().windows - before.stats.windows} windows, 48 tokens, dim 1024): ${(performance.now() - t1).toFixed(0)} ms; aborted after ${ms.toFixed(0)} ms`);
  assert.equal(index.stats().documents, 304);
});

// ── Export / import ───────────────────────────────────────────────────────────────────────────
/** The parts of an exported file: header (parsed) and data bytes; `build` makes a file again. */
async function parts(blob) {
  const buf = new Uint8Array(await blob.arrayBuffer());
  const len = new DataView(buf.buffer).getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(12, 12 + len)));
  const base = 12 + len + ((8 - ((12 + len) % 8)) % 8);
  return { header, data: buf.slice(base) };
}
function build({ header, data }, { magic = 'BGEM3HIX', lenDelta = 0 } = {}) {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const head = new Uint8Array(12);
  head.set(new TextEncoder().encode(magic).subarray(0, 8));
  new DataView(head.buffer).setUint32(8, json.byteLength + lenDelta, true);
  const pad = (8 - ((12 + json.byteLength) % 8)) % 8;
  return new Blob([head, json, new Uint8Array(pad), data]);
}
/** A typed view of the array `ref` in `data`. */
function view(data, ref) {
  const T = { i8: Int8Array, u8: Uint8Array, u16: Uint16Array, u32: Uint32Array, f32: Float32Array }[ref.$a];
  return new T(data.buffer, data.byteOffset + ref.o, ref.n);
}

test('export / import: round trip (replace and merge), the same search results', async () => {
  for (const options of [{}, { colbert: 'pooled' }, { colbert: 'none', dense: 'f16' }]) {
    const { index, fingerprint } = await fresh(options);
    const items = docs(20, { seed: 21 });
    await index.add(items);
    const q = query(22);
    const before = await snapshot(index, q);
    const blob = await index.export();
    const copy = await openIndex(`copy-${seq++}`, { storage: 'memory', fingerprint });
    await copy.add(docs(3, { seed: 5, prefix: 'other' }));
    assert.deepEqual(await copy.import(blob), { added: 20, replaced: 0 });
    const after = await snapshot(copy, q);
    assert.deepEqual(after.hits, before.hits, JSON.stringify(options));
    assert.deepEqual({ ...after.stats, name: 0, memoryBytes: 0 }, { ...before.stats, name: 0, memoryBytes: 0 });
    for (const id of ['d0', 'd13']) assert.deepEqual(await copy.get(id), await index.get(id));
    // Exported again: the same records (apart from the time stamp).
    const again = await parts(await copy.export()), first = await parts(blob);
    assert.deepEqual({ ...again.header, exportedAt: 0 }, { ...first.header, exportedAt: 0 });
    assert.deepEqual(again.data, first.data);
    // Merge: the file's documents replace those of the same id, the others stay.
    const merged = await openIndex(`merge-${seq++}`, { storage: 'memory', fingerprint, ...options });
    await merged.add([...docs(2, { seed: 77 }), ...docs(2, { seed: 5, prefix: 'other' })]);
    assert.deepEqual(await merged.import(blob, { mode: 'merge' }), { added: 18, replaced: 2 });
    assert.equal(merged.stats().documents, 22);
    assert.deepEqual(await merged.get('d1'), await index.get('d1'));
    if (options.colbert === 'pooled') {
      const plain = await openIndex(`plain-${seq++}`, { storage: 'memory', fingerprint });
      await rejectsKind(plain.import(blob, { mode: 'merge' }), 'format', /options\.colbert is "pooled" and this index's "int8"/);
    }
  }
});

test('crafted index files: each refused (kind format / model / input) naming the problem; the index unchanged', async () => {
  const { index, fingerprint } = await fresh({ colbert: 'pooled' });
  await index.add(docs(5, { seed: 31 }));
  const file = await parts(await index.export());
  const target = (await fresh()).index;
  await target.add(docs(4, { seed: 32 }));
  const q = query(33);
  const before = await snapshot(target, q);
  const edit = fn => { const p = structuredClone(file); fn(p.header, p.data, p); return build(p); };
  const w = h => h.docs[1].lanes[0], t = h => h.docs[1].tokens[0];
  const cases = [
    ['not an index file', new Blob([new Uint8Array(100)]), 'format', /not an index file/],
    ['too short', new Blob([new Uint8Array(5)]), 'format', /too short/],
    ['truncated', build(file).slice(0, 2000), 'format', /truncated|past the end/],
    ['header length past the end', build(file, { lenDelta: 1e6 }), 'format', /header runs past the end/],
    ['header not JSON', (() => { const b = new Uint8Array(40); b.set(new TextEncoder().encode('BGEM3HIX')); new DataView(b.buffer).setUint32(8, 20, true); b.set(new TextEncoder().encode('{"format": "bge-m3-'), 12); return new Blob([b]); })(), 'format', /not JSON/],
    ['version 2', edit(h => { h.version = 2; }), 'format', /version is 2/],
    ['an unknown option', edit(h => { h.options.colbert = 'fp4'; }), 'format', /options\.colbert/],
    ['an array past the end', edit(h => { w(h).ids.o = 1e9; }), 'format', /document 2 \(id “d1”\): lanes\[0\]\.ids reaches past the end/],
    ['an unaligned array', edit(h => { w(h).ids.o += 4; }), 'format', /bad array reference/],
    ['arrays claiming more than the file', edit((h, data) => { h.docs[0].text = { $a: 'u8', o: 0, n: data.length }; }), 'format', /document 1 \(id “d0”\): text and the arrays before it claim more bytes than the file holds/],
    ['an unknown array type', edit(h => { w(h).weights.$a = 'f64'; }), 'format', /must be an array reference/],
    ['dense of the wrong width', edit(h => { w(h).dense.n = DIM - 1; }), 'format', /windows\[0\]\.dense holds 63 values; it must hold 64/],
    ['a non-unit dense vector', edit(h => { w(h).scale *= 3; }), 'format', /windows\[0\]\.dense has length/],
    ['a negative dense scale', edit(h => { w(h).scale = -w(h).scale; }), 'format', /scale must be a finite number from 0/],
    ['NaN lexical weight', edit((h, data) => { view(data, w(h).weights)[2] = NaN; }), 'format', /sparse\.weights holds NaN at \[2\]/],
    ['a token id out of the vocabulary', edit((h, data) => { view(data, w(h).ids)[0] = 250_002; }), 'format', /sparse\.ids holds 250002 at \[0\]; values are below 250002/],
    ['an input id out of the vocabulary', edit((h, data) => { view(data, t(h).inputIds)[1] = 1e6; }), 'format', /inputIds holds 1000000/],
    ['a ColBERT scale of Infinity', edit((h, data) => { view(data, t(h).scales)[1] = Infinity; }), 'format', /colbertScales\[1\] must be a finite number/],
    ['a negative ColBERT scale', edit((h, data) => { view(data, t(h).scales)[0] = -0.01; }), 'format', /colbertScales\[0\] must be a finite number from 0/],
    ['ColBERT rows not pooled', edit(h => { t(h).scales.n += 1; }), 'format', /colbertScales holds/],
    ['a pooled row out of range', edit((h, data) => { view(data, t(h).assign)[0] = 999; }), 'format', /colbertAssign holds 999/],
    ['a window past the text', edit((h, data) => { view(data, h.docs[1].windows)[1] = 1e6; }), 'format', /windows\[0\]\.end must be a whole number from/],
    ['a token span past the text', edit((h, data, p) => { const spans = view(data, t(h).spans); spans[spans.length - 1] = 0x7f; spans[spans.length - 2] = 0x7f; }), 'format', /spans/],
    ['spans that do not decode', edit(h => { t(h).spans.n -= 1; }), 'format', /spans is not \d+ coded spans/],
    ['text that is not UTF-8', edit((h, data) => { view(data, h.docs[1].text)[0] = 0xff; }), 'format', /text is not UTF-8/],
    ['a repeated document id', edit(h => { h.docs[3].id = h.docs[1].id; }), 'format', /document 4 \(id “d1”\): id repeats the id of an earlier document/],
    ['an empty id', edit(h => { h.docs[2].id = ''; }), 'format', /document 3: id is empty/],
    ['lanes and tokens of different lengths', edit(h => { h.docs[2].tokens.pop(); }), 'format', /lanes and tokens must be lists of the same length/],
    ['a probe of another width', edit(h => { h.fingerprint.dim = 32; }), 'format', /fingerprint\.probe holds 64 values; it must hold 32/],
    ['another model', edit((h, data) => { view(data, h.fingerprint.probe).set(randomUnit(rng(77), DIM)); }), 'model', /another model/],
    ['not a Blob', 'a string', 'input', /Blob/],
  ];
  assert.ok(cases.length >= 12);
  for (const [name, blob, kind, pattern] of cases) {
    await rejectsKind(target.import(blob), kind, pattern).catch(e => { throw new Error(`${name}: ${e.message}`); });
    await rejectsKind(target.import(blob, { mode: 'merge' }), kind).catch(e => { throw new Error(`${name} (merge): ${e.message}`); });
  }
  assert.deepEqual(await snapshot(target, q), before);
  // The untouched file imports.
  const ok = await openIndex(`ok-${seq++}`, { storage: 'memory', fingerprint });
  await ok.import(build(file));
  assert.equal(ok.stats().documents, 5);
});

// ── Storage, memory, instances ────────────────────────────────────────────────────────────────
test('stored bytes per token: int8 <= 1.1 KB, pooled <= 0.6 KB, without ColBERT <= 40 B (dim 1024, 256-token windows)', async () => {
  const figures = {};
  for (const colbert of ['int8', 'pooled', 'none']) {
    const { index } = await fresh({ colbert }, 1024);
    const r = rng(50);
    // Text of ~4.5 characters a token, ~0.3 distinct lexical ids a token (what BGE-M3 gives prose).
    const items = Array.from({ length: 6 }, (_, i) => {
      const text = Array.from({ length: 2 * 255 }, (_, j) => `w${(i * 997 + j * 31) % 9000}`).join(' ');
      return simpleDoc(r, `t${i}`, { dim: 1024, windows: 2, rows: 256, sparseIds: 80, text });
    });
    await index.add(items);
    const st = index.stats();
    const per = Object.fromEntries(Object.entries(st.bytes).map(([k, v]) => [k, +(v / st.tokens).toFixed(2)]));
    figures[colbert] = per;
    assert.ok(per.total <= { int8: 1100, pooled: 600, none: 40 }[colbert], `${colbert}: ${JSON.stringify(per)}`);
  }
  console.log('stored bytes per token (dim 1024):', JSON.stringify(figures));
});

test('compaction: after many removals search still matches an exhaustive ranking; memory shrinks', async () => {
  const { index } = await fresh({ colbert: 'none' }, 16);
  const r = rng(60);
  const items = Array.from({ length: 3000 }, (_, i) => simpleDoc(r, `c${i}`, { dim: 16, rows: 3, sparseIds: 5 }));
  await index.add(items);
  const full = index.stats().memoryBytes;
  const removed = items.filter((_, i) => i % 3 !== 0).map(d => d.id);
  await index.remove(removed.slice(0, 1000));
  await index.remove(removed.slice(1000));
  const st = index.stats();
  assert.equal(st.documents, 1000);
  assert.ok(st.memoryBytes < full, `${st.memoryBytes} < ${full}`);
  const left = items.filter((_, i) => i % 3 === 0);
  for (let j = 0; j < 5; j++) {
    const q = left[j * 100].embedding.windows[0];
    const got = await index.search(q, { k: 5, weights: { dense: 0.5, sparse: 0.5, colbert: 0 }, candidates: 1000 });
    const want = left.map(d => ({ id: d.id, s: 0.5 * denseScore(q.dense, d.embedding.windows[0].dense) + 0.5 * lexicalScore(q.sparse, d.embedding.windows[0].sparse) }))
      .sort((a, b) => b.s - a.s).slice(0, 5).map(x => x.id);
    assert.deepEqual(got.hits.map(h => h.id), want);
  }
});

test('two instances of one index: each sees the other\'s writes; none is lost', async () => {
  const { index: a, name, fingerprint } = await fresh();
  const b = await openIndex(name, { storage: 'memory', fingerprint });
  await a.add(docs(3, { seed: 70, prefix: 'a' }));
  const q = docs(3, { seed: 70, prefix: 'a' })[2].embedding.windows[0];
  assert.equal((await b.search(q, { k: 1 })).hits[0].id, 'a2');
  await b.add(docs(3, { seed: 71, prefix: 'b' }));
  await a.add(docs(2, { seed: 72, prefix: 'c' }));
  await b.remove(['a0']);
  for (const x of [a, b]) {
    await x.search(q);
    assert.equal(x.stats().documents, 7);
    assert.equal(await x.get('a0'), null);
  }
});

// ── Agreement with the exhaustive ranking ─────────────────────────────────────────────────────
test('agreement: two-stage top-10 = exhaustive f32 hybrid top-10 in >= 95% of queries (int8); pooled and none reported', { timeout: 120_000 }, async () => {
  const t0 = performance.now();
  const dim = 1024;
  // 10 planted documents a query: the top 10 are (mostly) relevant ones, graded, a third of them
  // relevant by shared words more than by meaning. Ranks 11-15 are background documents a hair
  // apart: their agreement (reported, not required) shows what int8 rounding does to near-ties.
  const { items, queries } = agreementCorpus({ dim, queries: 20 });
  const windows = items.reduce((n, d) => n + d.embedding.windows.length, 0);
  const genMs = performance.now() - t0;
  // The exhaustive reference: every window, f32 vectors, scoring.js; a document = its best window.
  let t = performance.now();
  const exhaustive = queries.map(q => items.map(d => {
    let best = -Infinity;
    for (const w of d.embedding.windows) {
      const s = { dense: denseScore(q.dense, w.dense), sparse: lexicalScore(q.sparseMap, w.sparse), colbert: colbertScore(q.colbert.data, w.colbert.data, dim) };
      best = Math.max(best, weightedScore(s, DEFAULT_WEIGHTS));
    }
    return { id: d.id, s: best };
  }).sort((a, b) => b.s - a.s).slice(0, 15).map(x => x.id));
  const exhaustiveMs = (performance.now() - t) / queries.length;
  const report = { windows, queries: queries.length, generateMs: Math.round(genMs), exhaustiveF32MsPerQuery: Math.round(exhaustiveMs) };
  const windowOf = new Map(items.flatMap(d => d.embedding.windows.map(w => [d.text.slice(w.start, w.end), w])));
  const same = (a, b, n) => new Set([...a.slice(0, n), ...b.slice(0, n)]).size === n;
  for (const colbert of ['int8', 'pooled', 'none']) {
    const { index } = await fresh({ colbert }, dim);
    t = performance.now();
    await index.add(items);
    report[`${colbert}: add ms`] = Math.round(performance.now() - t);
    report[`${colbert}: memory MB`] = +(index.stats().memoryBytes / 1e6).toFixed(1);
    const runs = colbert === 'none' ? [['none, skipped', {}], ['none, reencode', { reencode: async texts => texts.map(x => windowOf.get(x)) }]] : [[colbert, {}]];
    for (const [label, extra] of runs) {
      // candidates = every window (int8 only): what int8 alone changes (no candidate missed).
      for (const candidates of label === 'int8' ? [16, 32, 64, windows] : [16, 32, 64]) {
        let top10 = 0, top15 = 0, ms = 0;
        for (let j = 0; j < queries.length; j++) {
          const r = await index.search(queries[j], { k: 15, candidates, ...extra });
          ms += r.timings.total;
          const ids = r.hits.map(h => h.id);
          if (same(ids, exhaustive[j], 10)) top10++;
          if (same(ids, exhaustive[j], 15)) top15++;
        }
        report[`${label} @${candidates === windows ? 'all' : candidates}`] = `top-10 ${top10}/${queries.length}, top-15 ${top15}/${queries.length}, ${(ms / queries.length).toFixed(1)} ms/query`;
        if (label === 'int8' && candidates === 64) assert.ok(top10 >= 0.95 * queries.length, `int8 agreement ${top10}/${queries.length}`);
      }
    }
  }
  console.log('agreement:', JSON.stringify(report, null, 1));
});
