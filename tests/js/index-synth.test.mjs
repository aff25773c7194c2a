// The synthetic BGE-M3-shaped corpus of scripts/index-synth.mjs (the index benchmark's data):
// deterministic, shaped as the issue asks, with neighbours that mean something, and documents the
// package's index accepts. Node only: node --test tests/js/index-synth.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCorpus, pairPool, WINDOWS_PER_DOC, BGE_M3 } from '../../scripts/index-synth.mjs';
import { denseScore, lexicalScore, colbertScore, weightedScore } from '../../pkg/src/scoring.js';
import { openIndex } from '../../pkg/src/index/hybrid.js';

const norm = (a, o = 0, n = a.length) => {
  let s = 0;
  for (let k = o; k < o + n; k++) s += a[k] * a[k];
  return Math.sqrt(s);
};
const mean = a => a.reduce((s, x) => s + x, 0) / a.length;

test('the same seed gives the same corpus, another seed another one', () => {
  const [a, b, c] = [1, 1, 2].map(seed => makeCorpus({ seed, windows: 1000 }));
  assert.deepEqual(a.dense(17), b.dense(17));
  assert.deepEqual(a.sparse(17), b.sparse(17));
  assert.deepEqual(a.colbert(17, 8), b.colbert(17, 8));
  assert.deepEqual(a.query(3), b.query(3));
  assert.deepEqual(a.document(2), b.document(2));
  assert.notDeepEqual(a.dense(17), c.dense(17));
  assert.notDeepEqual(a.sparse(17).ids, c.sparse(17).ids);
  // a window's data does not depend on what was asked before
  const fresh = makeCorpus({ seed: 1, windows: 1000 });
  assert.deepEqual(fresh.colbert(17, 8), a.colbert(17, 8));
});

test('shapes and distributions: unit dense and ColBERT rows, ~150 sparse ids (Zipf), weights in (0, 0.35] skewed low', () => {
  const c = makeCorpus({ seed: 5, windows: 20000 });
  assert.equal(c.dim, BGE_M3.dim);
  for (const w of [0, 1, 999, 19999]) assert.ok(Math.abs(norm(c.dense(w)) - 1) < 1e-5);
  const cb = c.colbert(3, 64);
  assert.equal(cb.rows, 64);
  assert.equal(cb.data.length, 64 * c.dim);
  assert.equal(cb.ids[63], 2, 'the last row is </s>');
  for (let r = 0; r < 64; r++) assert.ok(Math.abs(norm(cb.data, r * c.dim, c.dim) - 1) < 1e-5);
  const counts = [], weights = [], df = new Map();
  for (let w = 0; w < 2000; w++) {
    const s = c.sparse(w);
    counts.push(s.ids.length);
    for (let i = 0; i < s.ids.length; i++) {
      assert.ok(s.ids[i] >= 4 && s.ids[i] < BGE_M3.vocab, `id ${s.ids[i]}`);
      if (i) assert.ok(s.ids[i] > s.ids[i - 1], 'ids ascending and distinct');
      weights.push(s.weights[i]);
      df.set(s.ids[i], (df.get(s.ids[i]) ?? 0) + 1);
    }
  }
  assert.ok(Math.abs(mean(counts) - 150) < 5, `mean sparse ids ${mean(counts)}`);
  assert.ok(weights.every(x => x > 0 && x <= 0.35));
  weights.sort((a, b) => a - b);
  const median = weights[weights.length >> 1];
  assert.ok(median < 0.175, `median weight ${median}: skewed low`);
  // Zipf: the most frequent id is in most windows; most ids are rare
  const freq = [...df.values()].sort((a, b) => b - a);
  assert.ok(freq[0] > 1500, `top document frequency ${freq[0]} of 2000`);
  assert.ok(freq[Math.floor(freq.length / 2)] <= 2, 'the median id occurs in at most 2 windows');
});

test('neighbours mean something: same document > same topic > unrelated; queries find their planted window', () => {
  const c = makeCorpus({ seed: 9, windows: 8000 });
  const d = w => c.dense(w);
  const same = [], topic = [], other = [];
  for (let i = 0; i < 100; i++) same.push(denseScore(d(WINDOWS_PER_DOC * i), d(WINDOWS_PER_DOC * i + 1)));
  const byTopic = new Map();
  for (let w = 0; w < 8000; w += WINDOWS_PER_DOC) {
    const t = c.topicOf(w);
    if (byTopic.has(t) && topic.length < 100) topic.push(denseScore(d(byTopic.get(t)), d(w)));
    else if (!byTopic.has(t)) byTopic.set(t, w);
    const u = (w + 4000) % 8000;
    if (c.topicOf(u) !== t && other.length < 100) other.push(denseScore(d(w), d(u)));
  }
  assert.ok(mean(same) > mean(topic) + 0.1 && mean(topic) > mean(other) + 0.1, `same ${mean(same)} topic ${mean(topic)} other ${mean(other)}`);
  // the planted window scores above a random sample of windows in every mode
  let wins = 0;
  for (let i = 0; i < 10; i++) {
    const q = c.query(i);
    const score = w => {
      const s = { dense: denseScore(q.dense, d(w)), sparse: lexicalScore(q.sparse, c.sparse(w)), colbert: colbertScore(q.colbert.data, c.colbert(w, 32).data, c.dim) };
      return weightedScore(s);
    };
    const best = score(q.target);
    let above = 0;
    for (let j = 0; j < 30; j++) if (score((q.target + 1 + 263 * j) % 8000) >= best) above++;
    if (above === 0) wins++;
  }
  assert.ok(wins >= 9, `planted window first in ${wins} of 10 queries`);
});

test('documents are what encode() gives and the index accepts them (int8 ColBERT and none), and search finds the planted document', async () => {
  const c = makeCorpus({ seed: 11, windows: 80, tokens: 40 });
  const doc = c.document(3, { windowTokens: 40 });
  assert.equal(doc.embedding.windows.length, WINDOWS_PER_DOC);
  for (const w of doc.embedding.windows) {
    assert.equal(w.inputIds.length, 40);
    assert.equal(w.tokenEnd - w.tokenStart + 2, 40);
    assert.equal(w.colbert.rows, 39);
    assert.equal(w.inputIds[0], 0);
    assert.equal(w.inputIds[39], 2);
    // row r is token inputIds[r + 1]; its span holds that token's word
    assert.equal(w.colbertSpans[0], w.start);
    for (let r = 0; r < 38; r++) assert.match(doc.text.slice(w.colbertSpans[2 * r], w.colbertSpans[2 * r + 1]), /^[a-z]{2,7}$/);
    assert.equal(w.colbertSpans[2 * 37 + 1], w.end);
    assert.equal(w.colbertSpans[2 * 38], w.colbertSpans[2 * 38 + 1], '</s> has an empty span');
  }
  const probe = c.dense(0);
  for (const colbert of ['int8', 'none']) {
    const index = await openIndex(`synth-${colbert}`, { storage: 'memory', colbert, fingerprint: { dim: c.dim, probe } });
    const docs = Array.from({ length: c.docs }, (_, d) => c.document(d, { windowTokens: 40, colbert: colbert !== 'none' }));
    assert.deepEqual(await index.add(docs), { added: c.docs, replaced: 0 });
    assert.equal(index.stats().windows, 80);
    const q = c.query(2);
    const r = await index.search(q, { k: 3 });
    assert.equal(r.hits[0].id, q.targetDoc, `colbert ${colbert}: the planted document first`);
    index.close();
  }
});

test('pairPool halves the rows and keeps them unit', () => {
  const c = makeCorpus({ seed: 1, windows: 10 });
  const p = pairPool(c.colbert(1, 9));
  assert.equal(p.rows, 5);
  for (let r = 0; r < 5; r++) assert.ok(Math.abs(norm(p.data, r * c.dim, c.dim) - 1) < 1e-5);
});
