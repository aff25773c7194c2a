// The portable export (pkg/src/index/portable.js) loaded into real engines through their own
// clients: the demo's sample corpus encoded by the package in headless Chromium (tiny-m3 fixture,
// wasm CPU), exported by toJsonl, loaded by tests/engines/test_portable.py into Qdrant (qdrant-client
// local mode) and Milvus Lite; 20 queries' dense-only and sparse-only top-10 (and, in Qdrant,
// ColBERT MaxSim) must be ours: exact scores computed here with the package's scoring helpers on
// the exported vectors. Needs python3; scripts/engines-setup.sh installs the pinned clients.
//
//   node --test tests/engines/portable.test.mjs        (PORTABLE_KEEP=1: keep the files, path printed)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { serve, launch, requireFixtures, root, fixtures } from '../browser/server.mjs';
import { toJsonl, portableSchema, pointId } from '../../pkg/src/index/portable.js';
import { openIndex, deleteIndex } from '../../pkg/src/index.js';
import { denseScore, lexicalScore, colbertScore, weightedScore, DEFAULT_WEIGHTS } from '../../pkg/src/scoring.js';
import { Sha256 } from '../../pkg/src/sha256.js';

/** The corpus is cut into windows of this many tokens (<s> and </s> included), so that the 13
 *  documents give a few hundred windows to rank (the demo's 8192 would give 17). */
const MAX_LENGTH = 128;
/** Top-k compared per query and mode. */
const K = 10;
/** Questions about the sample corpus, in its languages (the demo ships no query list). */
const QUERIES = [
  'How do I keep a sourdough starter alive in the fridge?',
  'What lives in a tide pool at low tide?',
  'Wie schütze ich mein Fahrrad im Winter vor Rost?',
  'Comment réussir son compost au jardin ?',
  '¿Qué necesito para observar las estrellas por primera vez?',
  'Quando si raccolgono le olive?',
  '绿茶应该用多少度的水泡？',
  '図書館で本を予約するにはどうすればいいですか',
  '가을 산행에 무엇을 챙겨야 하나요?',
  'Когда лучше ехать на Байкал зимой?',
  'كيف أوفر الماء في المنزل؟',
  'How can I search my own documents privately without a cloud service?',
  'When should a beekeeper add a honey super?',
  'How do I treat varroa mites in the autumn?',
  'Which embedding model works for many languages?',
  'How much flour and water does a starter need each day?',
  'Is the ice on Lake Baikal safe to walk on?',
  'What should go into a compost bin and what should not?',
  'How do I store a bicycle chain over the winter?',
  'What does a hybrid of dense and lexical retrieval give me?',
];

const f32 = a => Float32Array.from(a);
const typedWindow = w => ({
  ...w, inputIds: Uint32Array.from(w.inputIds), dense: f32(w.dense),
  sparse: { ids: Uint32Array.from(w.sparse.ids), weights: f32(w.sparse.weights) },
  colbert: { data: f32(w.colbert.data), rows: w.colbert.rows, dim: w.colbert.dim },
  colbertSpans: Uint32Array.from(w.colbertSpans),
});

let data, encodeTotalMs, dir;
before(async () => {
  requireFixtures();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm3-portable-'));
  const t0 = performance.now();
  const { server, base } = await serve();
  const browser = await launch();
  try {
    const page = await browser.newPage();
    page.on('pageerror', e => console.log('[page error]', e.message));
    await page.goto(`${base}/tests/browser/harness.html`);
    data = await page.evaluate(async args => (await import('/tests/engines/portable-harness.mjs')).encodeCorpus(args), { queries: QUERIES, maxLength: MAX_LENGTH });
  } finally {
    await browser.close();
    server.close();
  }
  encodeTotalMs = performance.now() - t0;
  data.docs = data.docs.map(d => ({ ...d, windows: d.windows.map(typedWindow) }));
});
// PORTABLE_KEEP=1 keeps the exports, schemas and queries (to try the docs' snippets on them).
after(() => {
  if (!dir) return;
  if (process.env.PORTABLE_KEEP) console.log(`kept ${dir}`);
  else fs.rmSync(dir, { recursive: true, force: true });
});

async function collect(iterable) {
  const out = [];
  for await (const x of iterable) out.push(x);
  return out;
}

test('toJsonl writes the same lines in Node as in the browser, one per window', { timeout: 600_000 }, async () => {
  const windows = data.docs.reduce((s, d) => s + d.windows.length, 0);
  console.log(`${data.docs.length} documents, ${windows} windows of <= ${MAX_LENGTH} tokens; ${QUERIES.length} queries; encode ${data.encodeMs.toFixed(0)} ms in Chromium (${encodeTotalMs.toFixed(0)} ms with start-up)`);
  assert.equal(data.docs.length, 13);
  assert.ok(windows > 100, `${windows} windows`);
  for (const format of ['qdrant', 'milvus']) {
    const lines = await collect(toJsonl(data.docs, { format }));
    assert.equal(lines.length, windows);
    assert.equal(data.lines[format], windows);
    const h = new Sha256(), enc = new TextEncoder();
    for (const l of lines) h.update(enc.encode(l));
    assert.equal(h.digestHex(), data.sha256[format], `${format}: Node and the browser wrote different JSONL`);
    // The lines carry the encoded values exactly (as float32), window by window.
    const windowsInOrder = data.docs.flatMap(d => d.windows.map((w, k) => ({ d, w, k })));
    lines.forEach((l, n) => {
      const p = JSON.parse(l), { d, w, k } = windowsInOrder[n];
      const v = format === 'qdrant' ? p.vector : p;
      assert.equal(p.id, pointId(d.id, k));
      assert.deepEqual(f32(v.dense), w.dense, `${format} line ${n}: dense`);
      const sparse = format === 'qdrant' ? new Map(v.sparse.indices.map((id, i) => [id, Math.fround(v.sparse.values[i])])) : new Map(Object.entries(v.sparse).map(([id, x]) => [+id, Math.fround(x)]));
      assert.deepEqual(sparse, new Map([...w.sparse.ids].map((id, i) => [id, w.sparse.weights[i]]).filter(([, x]) => format === 'qdrant' || x !== 0)), `${format} line ${n}: sparse`);
      if (format === 'qdrant') assert.deepEqual(f32(v.colbert.flat()), w.colbert.data, `${format} line ${n}: colbert`);
    });
    fs.mkdirSync(path.join(dir, 'encode'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'encode', `${format}.jsonl`), lines.join(''));
  }
});

// `m3 encode --format` (src/bin/m3/portable.rs) writes this spec natively: the same lines for the
// same documents, up to the native and wasm backends' float differences (pkg.test.mjs holds the two
// backends to 1e-5).
const m3 = path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/bge-m3-target'), 'release/m3');
const CLI_TOL = 1e-5;
const maxDiff = (a, b, what) => {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  return a.reduce((d, x, i) => Math.max(d, Math.abs(x - b[i])), 0);
};

test('m3 encode --format qdrant|milvus writes the lines toJsonl writes (ids, payloads; vectors within 1e-5)', { timeout: 300_000 }, async () => {
  assert.ok(fs.existsSync(m3), `${m3} is missing: build it with cargo build --release --bin m3`);
  const input = data.docs.map(d => JSON.stringify({ id: d.id, text: d.text, meta: d.meta })).join('\n') + '\n';
  const worst = { dense: 0, sparse: 0, colbert: 0 };
  for (const format of ['qdrant', 'milvus']) {
    const run = spawnSync(m3, ['encode', '--model', path.join(fixtures, 'tiny-m3'), '--max-length', String(MAX_LENGTH), '--format', format],
      { input, encoding: 'utf8', maxBuffer: 1 << 30 });
    assert.equal(run.status, 0, run.stderr);
    const cli = run.stdout.split('\n').filter(Boolean).map(l => JSON.parse(l));
    const ours = fs.readFileSync(path.join(dir, 'encode', `${format}.jsonl`), 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
    assert.equal(cli.length, ours.length, `${format}: lines`);
    cli.forEach((c, n) => {
      const o = ours[n], at = `${format} line ${n}`;
      assert.equal(c.id, o.id, `${at}: id`);
      const sparse = x => (format === 'qdrant' ? Object.fromEntries(x.vector.sparse.indices.map((id, i) => [id, x.vector.sparse.values[i]])) : x.sparse);
      const [cs, os] = [sparse(c), sparse(o)];
      assert.deepEqual(Object.keys(cs).sort(), Object.keys(os).sort(), `${at}: sparse ids`);
      worst.sparse = Math.max(worst.sparse, ...Object.keys(os).map(k => Math.abs(cs[k] - os[k])));
      if (format === 'qdrant') {
        assert.deepEqual(Object.keys(c).sort(), ['id', 'payload', 'vector']);
        assert.deepEqual(Object.keys(c.vector).sort(), Object.keys(o.vector).sort(), `${at}: vectors`);
        assert.deepEqual(c.payload, o.payload, `${at}: payload`);
        worst.dense = Math.max(worst.dense, maxDiff(c.vector.dense, o.vector.dense, at));
        assert.equal(c.vector.colbert.length, o.vector.colbert.length, `${at}: ColBERT rows`);
        worst.colbert = Math.max(worst.colbert, maxDiff(c.vector.colbert.flat(), o.vector.colbert.flat(), at));
      } else {
        const { dense: cd, sparse: _c, ...crest } = c, { dense: od, sparse: _o, ...orest } = o;
        assert.deepEqual(crest, orest, `${at}: row fields`);
        worst.dense = Math.max(worst.dense, maxDiff(cd, od, at));
      }
    });
  }
  console.log(`m3 encode --format vs toJsonl: ${data.docs.length} documents, largest differences`, worst);
  for (const [what, d] of Object.entries(worst)) assert.ok(d <= CLI_TOL, `${what} differs by ${d}`);
});

/** The exported points, parsed back: id -> { dense, sparse: Map, colbert (flat), doc, window }. */
function readPoints(file) {
  const points = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const p = JSON.parse(line);
    const c = p.vector.colbert;
    points.set(p.id, {
      dense: f32(p.vector.dense),
      sparse: new Map(p.vector.sparse.indices.map((id, i) => [id, Math.fround(p.vector.sparse.values[i])])),
      colbert: f32(c.flat()), rows: c.length,
      doc: p.payload.doc_id, window: p.payload.window,
    });
  }
  return points;
}

/** [id, score] best first; equal scores by id, so that the list is one order. */
const ranked = scores => [...scores].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));

/** Loads `{format}.jsonl` of `sub` (under the test's folder) into both engines through
 *  test_portable.py and checks its report; `label` names the run. */
async function engineCheck(label, sub) {
  const where = path.join(dir, sub);
  const points = readPoints(path.join(where, 'qdrant.jsonl'));
  const dim = data.docs[0].windows[0].dense.length;
  // The Milvus rows carry the same vectors as the Qdrant points of the same id (zeros left out).
  const milvusLines = fs.readFileSync(path.join(where, 'milvus.jsonl'), 'utf8').split('\n').filter(Boolean);
  assert.equal(milvusLines.length, points.size);
  for (const line of milvusLines) {
    const r = JSON.parse(line), p = points.get(r.id);
    assert.ok(p, `Milvus row ${r.id} has no Qdrant point`);
    assert.deepEqual(f32(r.dense), p.dense);
    assert.deepEqual(new Map(Object.entries(r.sparse).map(([id, w]) => [+id, Math.fround(w)])), new Map([...p.sparse].filter(([, w]) => w !== 0)));
    assert.equal(r.doc_id, p.doc);
    assert.equal(r.window, p.window);
  }
  // Ours: exact scores of every window, with the package's helpers, on the exported vectors.
  const expected = data.queries.map(q => {
    const qd = f32(q.dense), qs = new Map(q.sparse.ids.map((id, i) => [id, Math.fround(q.sparse.weights[i])])), qc = f32(q.colbert.data);
    const all = [...points].map(([id, p]) => ({ id, dense: denseScore(qd, p.dense), sparse: lexicalScore(qs, p.sparse), colbert: colbertScore(qc, p.colbert, dim) }));
    return {
      text: q.text,
      dense: ranked(all.map(s => [s.id, s.dense])),
      // Engines return only points sharing a token with the query: a score of 0 is no match.
      sparse: ranked(all.filter(s => s.sparse > 0).map(s => [s.id, s.sparse])),
      colbert: ranked(all.map(s => [s.id, s.colbert])),
    };
  });
  fs.writeFileSync(path.join(where, 'queries.json'), JSON.stringify({
    k: K, dim,
    queries: data.queries.map((q, i) => ({ text: q.text, dense: q.dense, sparse: q.sparse, colbert: q.colbert, expected: expected[i] })),
  }));
  fs.writeFileSync(path.join(where, 'schema-qdrant.json'), JSON.stringify(portableSchema('qdrant', dim, { exact: true })));
  fs.writeFileSync(path.join(where, 'schema-milvus.json'), JSON.stringify(portableSchema('milvus', dim, { exact: true, name: 'bge_m3_test' })));

  const t0 = performance.now();
  const python = execFileSync('bash', ['-c', 'source scripts/engines-setup.sh && engines_setup'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1);
  const setupMs = performance.now() - t0;
  const run = spawnSync(python, [path.join(root, 'tests/engines/test_portable.py'), '-v'], {
    cwd: where, env: { ...process.env, PORTABLE_DATA: where }, encoding: 'utf8', timeout: 600_000,
  });
  console.log(run.stderr.trim());
  assert.equal(run.status, 0, `${label}: test_portable.py failed (status ${run.status}${run.error ? `, ${run.error.message}` : ''})`);
  const report = JSON.parse(fs.readFileSync(path.join(where, 'report.json'), 'utf8'));
  console.log(`${label}: engines-setup ${(setupMs / 1000).toFixed(1)} s;`, JSON.stringify(report));
  assert.deepEqual(Object.keys(report).sort(), ['milvus', 'qdrant']);
  for (const [engine, r] of Object.entries(report)) {
    assert.equal(r.points, points.size, `${label}, ${engine}: points loaded`);
    for (const mode of engine === 'qdrant' ? ['dense', 'sparse', 'colbert'] : ['dense', 'sparse']) {
      assert.equal(r[mode].queries, QUERIES.length, `${label}, ${engine} ${mode}: queries checked`);
    }
  }
  return points;
}

test('Qdrant and Milvus Lite, loaded through their own clients, rank as we do (dense, sparse; ColBERT in Qdrant)', { timeout: 900_000 }, async () => {
  assert.ok(fs.existsSync(path.join(dir, 'encode/qdrant.jsonl')), 'the export test did not write the JSONL');
  await engineCheck('encode() windows', 'encode');
});

test('the same through a hybrid index: index.documents() (int8, dequantized) exported and ranked as we do', { timeout: 900_000 }, async () => {
  // A memory index of the same embeddings (int8 dense and ColBERT, the defaults).
  const index = await openIndex('portable-engines', { storage: 'memory', fingerprint: { dim: data.fingerprint.dim, probe: f32(data.fingerprint.probe) } });
  try {
    await index.add(data.docs.map(d => ({ id: d.id, text: d.text, meta: d.meta, embedding: { windows: d.windows } })));
    const sub = path.join(dir, 'index');
    fs.mkdirSync(sub);
    for (const format of ['qdrant', 'milvus']) {
      fs.writeFileSync(path.join(sub, `${format}.jsonl`), (await collect(toJsonl(index.documents(), { format }))).join(''));
    }
    const points = await engineCheck('index.documents()', 'index');
    const windows = data.docs.reduce((s, d) => s + d.windows.length, 0);
    assert.equal(points.size, windows);
    // The index's values are its int8 codes dequantized: close to the model's, not equal.
    const direct = readPoints(path.join(dir, 'encode/qdrant.jsonl'));
    let worst = 0, differ = 0;
    for (const [id, p] of points) {
      const d = direct.get(id);
      assert.ok(d, `index point ${id} (${p.doc} window ${p.window}) is not in the encode() export`);
      assert.equal(p.rows, d.rows);
      for (let i = 0; i < p.dense.length; i++) { worst = Math.max(worst, Math.abs(p.dense[i] - d.dense[i])); if (p.dense[i] !== d.dense[i]) differ++; }
    }
    console.log(`index export vs encode() export: dense differs by <= ${worst.toExponential(2)} (${differ} of ${points.size * dimOf(points)} values differ)`);
    assert.ok(differ > 0, 'the index export should carry dequantized int8 values, not the model\'s');
    assert.ok(worst < 0.01, `dense values differ by ${worst}`);
  } finally {
    index.close();
    await deleteIndex('portable-engines', { storage: 'memory' });
  }
});

const dimOf = points => points.values().next().value.dense.length;

// Issue 13's agreement check on the demo's sample corpus (13 documents in 311 windows of 128
// tokens, the fixture model) and the 20 queries: the index's two-stage top-10 (candidates from the
// int8 dense lane and the sparse postings, then exact scores) against the exhaustive f32 hybrid
// top-10 (every window of every document scored with scoring.js on the model's f32 vectors, each
// document ranked by its best window), in order. Two documents whose exact scores differ by less
// than twice the largest quantization error seen (the index's hybrid score of a window against
// its exact f32 score) may come in either order: int8 cannot tell them apart. Both figures are
// printed; the test holds the tie-aware one to issue 13's 95%.
test('agreement: the two-stage top-10 equals the exhaustive f32 hybrid top-10 (sample corpus, 20 queries)', { timeout: 300_000 }, async () => {
  const windowScore = (q, w) => weightedScore({ dense: denseScore(q.dense, w.dense), sparse: lexicalScore(q.sparse, w.sparse), colbert: colbertScore(q.colbert.data, w.colbert.data, q.colbert.dim) }, DEFAULT_WEIGHTS);
  const docs = new Map(data.docs.map(d => [d.id, d]));
  const exact = (q, id) => Math.max(...docs.get(id).windows.map(w => windowScore(q, w)));
  const exhaustive = q => data.docs.map(d => ({ id: d.id, score: exact(q, d.id) })).sort((a, b) => b.score - a.score).slice(0, 10);
  const queries = data.queries.map(q => ({ dense: f32(q.dense), sparse: { ids: Uint32Array.from(q.sparse.ids), weights: f32(q.sparse.weights) }, colbert: { data: f32(q.colbert.data), rows: q.colbert.rows, dim: q.colbert.dim } }));
  const want = queries.map(exhaustive);
  const report = {};
  for (const colbert of ['int8', 'pooled', 'none']) {
    const name = `agreement-${colbert}`;
    const index = await openIndex(name, { storage: 'memory', colbert, fingerprint: { dim: data.fingerprint.dim, probe: f32(data.fingerprint.probe) } });
    try {
      await index.add(data.docs.map(d => ({ id: d.id, text: d.text, meta: d.meta, embedding: { windows: d.windows } })));
      const results = [];
      let err = 0;
      for (const q of queries) {
        const hits = (await index.search(q, { k: 10 })).hits;
        for (const h of hits) err = Math.max(err, Math.abs(h.hybrid - windowScore(q, docs.get(h.id).windows[h.window.index])));
        results.push(hits);
      }
      let same = 0, withinTies = 0;
      results.forEach((hits, n) => {
        const w = want[n];
        if (hits.length === w.length && hits.every((h, i) => h.id === w[i].id)) same++;
        if (hits.length === w.length && hits.every((h, i) => Math.abs(exact(queries[n], h.id) - w[i].score) <= 2 * err)) withinTies++;
      });
      // Without ColBERT rows the index's hybrid is over dense and sparse only: not comparable to
      // the three-mode exact score, so only the order is reported.
      report[colbert] = colbert === 'none' ? { inOrder: `${same}/${queries.length}` }
        : { inOrder: `${same}/${queries.length}`, upToTies: `${withinTies}/${queries.length}`, quantizationError: +err.toExponential(2) };
      if (colbert === 'int8') {
        assert.ok(err < 5e-3, `int8: hybrid scores ${err} from the exact ones`);
        assert.ok(withinTies >= 0.95 * queries.length, `int8: the top-10 agreed (up to ties within ${2 * err}) in ${withinTies} of ${queries.length} queries`);
      }
    } finally {
      index.close();
      await deleteIndex(name, { storage: 'memory' });
    }
  }
  console.log('two-stage vs exhaustive f32 top-10 on the sample corpus (64 candidates per lane):', JSON.stringify(report));
});
