// The portable export's shapes, ids, number text and input checks (pkg/src/index/portable.js), in
// Node, no engine: tests/engines/portable.test.mjs loads real exports into Qdrant and Milvus.
//
//   node --test tests/js/portable.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toJsonl, portableSchema, pointId, f32Text, PORTABLE_FORMATS } from '../../pkg/src/index/portable.js';
import * as pkg from '../../pkg/src/index.js';

/** A deterministic generator (mulberry32). */
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A unit vector of `dim` floats. */
function unit(rand, dim) {
  const v = new Float32Array(dim);
  let n = 0;
  for (let i = 0; i < dim; i++) { v[i] = rand() * 2 - 1; n += v[i] * v[i]; }
  for (let i = 0; i < dim; i++) v[i] /= Math.sqrt(n);
  return v;
}

/** A document shaped like encode()'s output: `windows` windows of `rows` tokens over `text`. */
function makeDoc(id, { text = 'The quick brown fox jumps over the lazy dog. '.repeat(4), windows = 2, dim = 8, rows = 4, seed = 1, meta } = {}) {
  const rand = rng(seed);
  const step = Math.floor(text.length / windows);
  return {
    id, text, meta,
    windows: Array.from({ length: windows }, (_, k) => {
      const colbert = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r++) colbert.set(unit(rand, dim), r * dim);
      return {
        start: k * step, end: k === windows - 1 ? text.length : (k + 1) * step + 3,
        tokenStart: k * (rows - 1), tokenEnd: (k + 1) * (rows - 1),
        inputIds: new Uint32Array(rows + 1),
        dense: unit(rand, dim),
        sparse: { ids: new Uint32Array([5 + k, 1000, 250001]), weights: new Float32Array([rand() * 0.3 + 0.01, 0, rand() * 0.3 + 0.01]) },
        colbert: { data: colbert, rows, dim },
      };
    }),
  };
}

async function lines(documents, options) {
  const out = [];
  for await (const l of toJsonl(documents, options)) out.push(l);
  return out;
}

/** The rejection of `promise`: asserts it has kind 'input' and a message matching `re`. */
async function rejectsInput(promise, re) {
  await assert.rejects(promise, e => {
    assert.equal(e.kind, 'input', `kind of "${e.message}"`);
    assert.match(e.message, re);
    return true;
  });
}

test('the package exports the portable functions', () => {
  for (const name of ['toJsonl', 'portableSchema', 'pointId', 'PORTABLE_FORMATS']) assert.equal(pkg[name], { toJsonl, portableSchema, pointId, PORTABLE_FORMATS }[name], name);
  assert.deepEqual([...PORTABLE_FORMATS], ['qdrant', 'milvus']);
});

test('pointId: a UUIDv8 of SHA-256(JSON [docId, window]), the values Python computes', () => {
  // hashlib.sha256(json.dumps([id, w], separators=(",", ":"), ensure_ascii=False).encode()),
  // first 16 bytes, version 8, variant 10.
  assert.equal(pointId('a.txt', 0), '6815090d-3c7f-8b67-9085-e8d2724581e9');
  assert.equal(pointId(17, 2), 'a065d358-eb00-8d74-b570-b6eb0471799f');
  assert.equal(pointId('ü"\n', 3), '126d6f01-1c4c-8ef8-809a-e948b7fd8d0b');
  assert.notEqual(pointId(1, 0), pointId('1', 0));
  assert.notEqual(pointId('a.txt', 1), pointId('a.txt', 0));
  const re = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  for (let w = 0; w < 200; w++) assert.match(pointId(`doc-${w}`, w), re);
  assert.throws(() => pointId('', 0), e => e.kind === 'input');
  assert.throws(() => pointId('a\uD800b', 0), e => e.kind === 'input' && /surrogate/.test(e.message));
  assert.throws(() => pointId(1.5, 0), e => e.kind === 'input');
  assert.throws(() => pointId('a', -1), e => e.kind === 'input');
});

test('f32Text gives back the same float32, in at most 9 significant digits', () => {
  const rand = rng(7);
  const buf = new Float32Array(1), bits = new Uint32Array(buf.buffer);
  let checked = 0;
  for (let i = 0; i < 200_000; i++) {
    bits[0] = (rand() * 4294967296) >>> 0; // every bit pattern: subnormals, extremes, signs
    const x = buf[0];
    if (!Number.isFinite(x)) continue;
    const s = f32Text(x);
    assert.equal(Math.fround(JSON.parse(s)), x, `${x} -> ${s}`);
    assert.ok(s.replace(/^-|e.*$|\./g, '').replace(/^0+/, '').length <= 9, s);
    checked++;
  }
  assert.ok(checked > 190_000);
  assert.equal(f32Text(0), '0');
  assert.equal(f32Text(0.5), '0.5');
  assert.equal(f32Text(Math.fround(0.1)), '0.100000001');
  assert.equal(f32Text(-1e-7), '-1.00000001e-7');
  assert.equal(f32Text(3), '3');
});

test('qdrant: one point per window, named vectors, payload with the span and text slice', async () => {
  const docs = [makeDoc('notes/a.txt', { meta: { title: 'A', tags: ['x'] } }), makeDoc(42, { windows: 3, seed: 2 })];
  const out = await lines(docs, { format: 'qdrant' });
  assert.equal(out.length, 5);
  assert.ok(out.every(l => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
  const points = out.map(l => JSON.parse(l));
  let n = 0;
  for (const doc of docs) {
    doc.windows.forEach((w, k) => {
      const p = points[n++];
      assert.deepEqual(Object.keys(p), ['id', 'vector', 'payload']);
      assert.equal(p.id, pointId(doc.id, k));
      assert.deepEqual(Float32Array.from(p.vector.dense), w.dense);
      assert.deepEqual(p.vector.sparse.indices, [...w.sparse.ids]);
      assert.deepEqual(Float32Array.from(p.vector.sparse.values), w.sparse.weights);
      assert.equal(p.vector.colbert.length, w.colbert.rows);
      assert.deepEqual(Float32Array.from(p.vector.colbert.flat()), w.colbert.data);
      assert.ok(p.vector.colbert.every(r => r.length === w.colbert.dim));
      assert.deepEqual(p.payload, {
        doc_id: doc.id, window: k, start: w.start, end: w.end, token_start: w.tokenStart, token_end: w.tokenEnd,
        text: doc.text.slice(w.start, w.end), meta: doc.meta ?? null,
      });
    });
  }
  // colbert: false, and a window without ColBERT rows (an index without them): no colbert vector.
  const bare = await lines(docs, { format: 'qdrant', colbert: false });
  assert.ok(bare.every(l => !('colbert' in JSON.parse(l).vector)));
  const noRows = makeDoc('n');
  delete noRows.windows[0].colbert;
  const mixed = (await lines([noRows], { format: 'qdrant' })).map(l => JSON.parse(l).vector);
  assert.equal('colbert' in mixed[0], false);
  assert.equal(mixed[1].colbert.length, 4);
});

test('milvus: one flat row per window, sparse as a dict without zeros, doc_id a string, no ColBERT', async () => {
  const docs = [makeDoc(7, { meta: 'plain string' }), makeDoc('b')];
  const rows = (await lines(docs, { format: 'milvus' })).map(l => JSON.parse(l));
  assert.equal(rows.length, 4);
  const w = docs[0].windows[1];
  const r = rows[1];
  assert.deepEqual(Object.keys(r), ['id', 'dense', 'sparse', 'doc_id', 'window', 'start', 'end', 'token_start', 'token_end', 'text', 'meta']);
  assert.equal(r.id, pointId(7, 1));
  assert.equal(r.doc_id, '7');
  assert.equal(r.meta, 'plain string');
  assert.deepEqual(Float32Array.from(r.dense), w.dense);
  assert.deepEqual(Object.keys(r.sparse), [String(w.sparse.ids[0]), String(w.sparse.ids[2])]); // the 0 left out
  assert.equal(Math.fround(r.sparse[w.sparse.ids[2]]), w.sparse.weights[2]);
  assert.equal(r.text, docs[0].text.slice(w.start, w.end));
  assert.equal(rows[2].meta, null);
  assert.ok(rows.every(x => !('colbert' in x)));
  // The same ids and vectors as the Qdrant export.
  const q = (await lines(docs, { format: 'qdrant' })).map(l => JSON.parse(l));
  assert.deepEqual(rows.map(x => x.id), q.map(x => x.id));
  assert.deepEqual(rows.map(x => x.dense), q.map(x => x.vector.dense));
});

test('documents may come from a generator or an async iterator; lines come in document order', async () => {
  const docs = [makeDoc('a'), makeDoc('b', { windows: 1 }), makeDoc('c', { windows: 3 })];
  async function* slowly() { for (const d of docs) { await new Promise(r => setTimeout(r, 1)); yield d; } }
  function* sync() { yield* docs; }
  const want = await lines(docs, { format: 'qdrant' });
  assert.deepEqual(await lines(slowly(), { format: 'qdrant' }), want);
  assert.deepEqual(await lines(sync(), { format: 'qdrant' }), want);
  assert.deepEqual(want.map(l => JSON.parse(l).payload.doc_id), ['a', 'a', 'b', 'c', 'c', 'c']);
  assert.deepEqual(await lines([{ id: 'empty', text: '', windows: [] }], { format: 'milvus' }), []);
});

test('bad documents reject with kind input, naming the document and window; earlier lines stand', async () => {
  const bad = (mutate, format = 'qdrant', id = 'd') => {
    const doc = makeDoc(id);
    mutate(doc, doc.windows[1]);
    return lines([doc], { format });
  };
  await rejectsInput(bad((d, w) => { w.dense[3] = NaN; }), /document "d" window 1: dense\[3\] is NaN/);
  await rejectsInput(bad((d, w) => { w.dense = w.dense.subarray(0, 7); }), /window 1: dense has 7 values, not 8/);
  await rejectsInput(bad((d, w) => { delete w.dense; }), /window 1: dense vector missing/);
  await rejectsInput(bad((d, w) => { delete w.sparse; }), /window 1: sparse vector missing/);
  await rejectsInput(bad((d, w) => { w.end = d.text.length + 1; }), /window 1: span .* is not inside the text/);
  await rejectsInput(bad((d, w) => { w.start = w.end + 1; }), /window 1: span/);
  await rejectsInput(bad((d, w) => { w.tokenEnd = -1; }), /window 1: token span/);
  await rejectsInput(bad((d, w) => { w.sparse.ids[1] = w.sparse.ids[0]; }), /window 1: sparse id \d+ comes twice/);
  await rejectsInput(bad((d, w) => { w.sparse.weights = w.sparse.weights.subarray(0, 2); }), /3 ids and 2 weights/);
  await rejectsInput(bad((d, w) => { w.sparse.weights[0] = Infinity; }), /sparse weight of id \d+ is Infinity/);
  await rejectsInput(bad((d, w) => { w.sparse.ids = [1, -2, 3]; }), /sparse id -2 is not a 32-bit unsigned integer/);
  await rejectsInput(bad((d, w) => { w.colbert.dim = 4; }), /window 1: colbert must be/);
  await rejectsInput(bad((d, w) => { w.colbert.data[5] = -Infinity; }), /colbert row 0\[5\] is -Infinity/);
  await rejectsInput(bad((d, w) => { w.colbert = { data: new Float32Array(0), rows: 0, dim: 8 }; }), /colbert has no rows/);
  await rejectsInput(bad(d => { d.text = 42; }), /text must be a string/);
  await rejectsInput(bad(d => { d.windows = {}; }), /windows must be an array/);
  await rejectsInput(bad(d => { d.meta = { n: 10n }; }), /meta is not JSON/);
  await rejectsInput(bad(d => { d.meta = () => 1; }), /meta is not JSON/);
  await rejectsInput(bad(() => {}, 'qdrant', ''), /empty string/);
  await rejectsInput(bad(() => {}, 'qdrant', 0.5), /safe integer/);
  await rejectsInput(bad(() => {}, 'qdrant', 'x\uDC00'), /surrogate/);
  await rejectsInput(bad(() => {}, 'qdrant', null), /non-empty string or a safe integer/);
  // Milvus' own limits.
  await rejectsInput(bad((d, w) => { w.sparse.weights[2] = -0.1; }, 'milvus'), /negative .* Milvus takes weights >= 0/);
  await rejectsInput(bad((d, w) => { w.sparse.weights.fill(0); }, 'milvus'), /no weight above 0, and Milvus cannot store/);
  await rejectsInput(bad(d => { d.text = 'é'.repeat(40_000); d.windows[1].start = 0; d.windows[1].end = d.text.length; }, 'milvus'), /80000 UTF-8 bytes, over Milvus' VARCHAR limit of 65535/);
  // The same documents are fine for Qdrant (negative or zero sparse weights, long texts).
  assert.equal((await bad((d, w) => { w.sparse.weights.fill(0); })).length, 2);
  // A document's lines come only once all of it is checked; the earlier documents' lines stand.
  const good = makeDoc('good'), broken = makeDoc('broken');
  broken.windows[1].dense[0] = NaN;
  const got = [];
  await rejectsInput((async () => { for await (const l of toJsonl([good, broken], { format: 'qdrant' })) got.push(JSON.parse(l).payload.doc_id); })(), /document "broken" window 1/);
  assert.deepEqual(got, ['good', 'good']);
  // Repeated document ids would overwrite points; a dense size unlike the first document's.
  await rejectsInput(lines([makeDoc('a'), makeDoc('a')], { format: 'qdrant' }), /document "a" comes twice/);
  assert.equal((await lines([makeDoc(1), makeDoc('1')], { format: 'qdrant' })).length, 4);
  await rejectsInput(lines([makeDoc('a'), makeDoc('b', { dim: 16 })], { format: 'qdrant' }), /document "b" window 0: dense has 16 values, not 8/);
  await rejectsInput(lines([makeDoc('a')], { format: 'qdrant', dim: 1024 }), /dense has 8 values, not 1024/);
  await rejectsInput(lines([null], { format: 'qdrant' }), /a document must be an object/);
});

test('bad options: TypeError with kind input', async () => {
  const typeError = async (promise, re) => assert.rejects(promise, e => e instanceof TypeError && e.kind === 'input' && re.test(e.message));
  await typeError(lines([], { format: 'weaviate' }), /format must be one of qdrant, milvus/);
  await typeError(lines([], {}), /format must be one of/);
  await typeError(lines([makeDoc('a')], { format: 'milvus', colbert: true }), /Milvus rows carry no ColBERT vectors/);
  await typeError(lines([], { format: 'qdrant', colbert: 'yes' }), /colbert must be true or false/);
  await typeError(lines([], { format: 'qdrant', dim: 0 }), /dim must be an integer > 0/);
  await typeError(lines(42, { format: 'qdrant' }), /iterable/);
  await typeError(lines('abc', { format: 'qdrant' }), /not a string/);
  await typeError(lines([], null), /options must be an object/);
});

test('portableSchema: Qdrant named vectors (Dot, MAX_SIM multivector, sparse) and Milvus REST v2 fields and indexes', () => {
  assert.deepEqual(portableSchema('qdrant', 1024), {
    vectors: {
      dense: { size: 1024, distance: 'Dot' },
      colbert: { size: 1024, distance: 'Dot', multivector_config: { comparator: 'max_sim' }, hnsw_config: { m: 0 } },
    },
    sparse_vectors: { sparse: {} },
  });
  assert.deepEqual(portableSchema('qdrant', 32, { exact: true, colbert: false }), { vectors: { dense: { size: 32, distance: 'Dot', hnsw_config: { m: 0 } } }, sparse_vectors: { sparse: {} } });
  const m = portableSchema('milvus', 1024, { name: 'notes' });
  assert.equal(m.collectionName, 'notes');
  assert.deepEqual(m.schema.fields.map(f => [f.fieldName, f.dataType]), [
    ['id', 'VarChar'], ['dense', 'FloatVector'], ['sparse', 'SparseFloatVector'], ['doc_id', 'VarChar'],
    ['window', 'Int64'], ['start', 'Int64'], ['end', 'Int64'], ['token_start', 'Int64'], ['token_end', 'Int64'],
    ['text', 'VarChar'], ['meta', 'JSON'],
  ]);
  assert.equal(m.schema.fields[0].isPrimary, true);
  assert.equal(m.schema.fields[1].elementTypeParams.dim, 1024);
  assert.deepEqual(m.indexParams.map(i => [i.fieldName, i.metricType, i.indexType]), [['dense', 'IP', 'AUTOINDEX'], ['sparse', 'IP', 'SPARSE_INVERTED_INDEX']]);
  assert.equal(portableSchema('milvus', 8, { exact: true }).indexParams[0].indexType, 'FLAT');
  // Every field of a Milvus row is in the schema, and nothing else.
  const row = (async () => JSON.parse((await lines([makeDoc('a')], { format: 'milvus' }))[0]))();
  return row.then(r => assert.deepEqual(Object.keys(r).sort(), m.schema.fields.map(f => f.fieldName).sort()));
});

test('portableSchema: bad arguments', () => {
  const typeError = (f, re) => assert.throws(f, e => e instanceof TypeError && e.kind === 'input' && re.test(e.message));
  typeError(() => portableSchema('solr', 8), /format must be one of/);
  typeError(() => portableSchema('qdrant', 0), /dim must be an integer > 0/);
  typeError(() => portableSchema('qdrant', '1024'), /dim must be/);
  typeError(() => portableSchema('milvus', 8, { colbert: true }), /no ColBERT/);
  typeError(() => portableSchema('milvus', 8, { name: '1bad' }), /name must be/);
  typeError(() => portableSchema('qdrant', 8, { exact: 1 }), /true or false/);
});

test('export speed of BGE-M3-sized windows (1024 dims, 512 ColBERT rows), reported', async () => {
  const docs = [makeDoc('big', { text: 'x'.repeat(3000), windows: 4, dim: 1024, rows: 512, seed: 3 })];
  const t0 = performance.now();
  const q = await lines(docs, { format: 'qdrant' });
  const qMs = performance.now() - t0;
  const t1 = performance.now();
  const m = await lines(docs, { format: 'milvus' });
  const mMs = performance.now() - t1;
  const mb = a => a.reduce((s, l) => s + l.length, 0) / 4 / 1e6;
  console.log(`qdrant with ColBERT: ${(qMs / 4).toFixed(0)} ms and ${mb(q).toFixed(2)} MB per window; milvus: ${(mMs / 4).toFixed(1)} ms and ${(mb(m) * 1000).toFixed(1)} KB per window`);
  assert.equal(q.length, 4);
  assert.equal(JSON.parse(q[0]).vector.colbert.length, 512);
});
