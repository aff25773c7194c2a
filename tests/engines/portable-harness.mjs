// Runs inside the test page (tests/browser/harness.html): the demo's sample corpus and the test's
// queries encoded by the package (tiny-m3 fixture, wasm CPU backend), the corpus exported by
// toJsonl in the browser, and everything handed back as plain data for the Node side.
import { load, modelFingerprint } from '/pkg/src/index.js';
import { toJsonl } from '/pkg/src/index/portable.js';
import { Sha256 } from '/pkg/src/sha256.js';

const plainWindow = w => ({
  start: w.start, end: w.end, tokenStart: w.tokenStart, tokenEnd: w.tokenEnd,
  inputIds: [...w.inputIds], dense: [...w.dense],
  sparse: { ids: [...w.sparse.ids], weights: [...w.sparse.weights] },
  colbert: { data: [...w.colbert.data], rows: w.colbert.rows, dim: w.colbert.dim },
  colbertSpans: [...w.colbertSpans],
});

/** `queries`: texts; `maxLength`: tokens per window for the corpus. Returns { docs, queries
 *  (encoded), fingerprint (modelFingerprint, for an index of these vectors), sha256: { qdrant,
 *  milvus } of the browser's JSONL, lines, encodeMs }. */
export async function encodeCorpus({ queries, maxLength }) {
  const model = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: false });
  // As the demo reads its sample corpus (www/indexing.js): manifest order, text trimmed.
  const manifest = await (await fetch('/www/corpus/manifest.json')).json();
  const items = await Promise.all(manifest.documents.map(async d => ({ d, text: (await (await fetch(`/www/corpus/${d.file}`)).text()).trim() })));
  const t0 = performance.now();
  const embs = await model.encode(items.map(i => i.text), { maxLength, colbertSpans: true });
  const q = await model.encode(queries);
  const encodeMs = performance.now() - t0;
  const fp = await modelFingerprint(model);
  await model.dispose();
  const docs = items.map(({ d, text }, k) => ({ id: d.file, text, meta: { title: d.title, lang: d.lang }, windows: embs[k].windows }));
  const sha256 = {}, lines = {};
  for (const format of ['qdrant', 'milvus']) {
    const h = new Sha256(), enc = new TextEncoder();
    let n = 0;
    for await (const line of toJsonl(docs, { format, colbert: format === 'qdrant' })) { h.update(enc.encode(line)); n++; }
    sha256[format] = h.digestHex();
    lines[format] = n;
  }
  return {
    docs: docs.map(d => ({ ...d, windows: d.windows.map(plainWindow) })),
    queries: q.map((e, i) => ({ text: queries[i], windows: e.windows.length, dense: [...e.dense], sparse: { ids: [...e.sparse.ids], weights: [...e.sparse.weights] }, colbert: { data: [...e.colbert.data], rows: e.colbert.rows, dim: e.colbert.dim } })),
    fingerprint: { dim: fp.dim, probe: [...fp.probe] },
    sha256, lines, encodeMs,
  };
}
