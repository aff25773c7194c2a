// A user's code against pkg/index.d.ts, checked by `tsc -p tests/types` in the test command: the
// types must accept what the README and pkg/README.md show, and reject misuse (@ts-expect-error).
import {
  load, isCached, clearCache, HF_BGE_M3, DEFAULT_WEIGHTS, denseScore, lexicalScore, colbertScore,
  weightedScore, hybridScores, reciprocalRankFusion,
  openIndex, deleteIndex, modelFingerprint, sameModel, PROBE_TEXT, DEFAULT_CANDIDATES,
} from 'bge-m3-web';
import type { Embedding, ErrorKind, M3Error, Model, ScoreWeights, Scores, WeightsDtype, WindowEmbedding } from 'bge-m3-web';
import type { HybridIndex, IndexHit, IndexSearchResult, IndexedDocument, IndexedWindow, IndexStats, ModelFingerprint } from 'bge-m3-web';

export async function quickStart(): Promise<number> {
  const cached: boolean = await isCached(HF_BGE_M3, { encoderFile: 'pytorch_model.bin' });
  const ctl = new AbortController();
  const model: Model = await load(HF_BGE_M3, {
    device: cached ? 'auto' : 'cpu',
    onProgress: p => console.log(p.file, p.loaded, p.total),
    signal: ctl.signal,
  });
  const [q, p] = await model.encode(['What is BGE M3?', 'BGE M3 is an embedding model ...']);
  const one: Embedding = await model.encode('a single text', { colbert: false, maxLength: 512, overlap: 64 });
  const windows: WindowEmbedding[] = one.windows;
  const first = windows[0];
  const span: [number, number] = [first.start, first.end];
  const s: Scores = hybridScores(q, p);
  const w: Readonly<ScoreWeights> = DEFAULT_WEIGHTS;
  const mean = weightedScore({ dense: s.dense, sparse: s.sparse, colbert: s.colbert }, { dense: w.dense, sparse: w.sparse });
  const scored: Scores[] = await model.score('query', ['passage'], { weights: { colbert: 0.5 }, truncate: true });
  const fused: [string, number][] = reciprocalRankFusion([['a', 'b'], ['b', 'a']]);
  const d = denseScore(q.dense!, p.dense!) + lexicalScore(q.sparse!, p.sparse!) + colbertScore(q.colbert!.data, p.colbert!.data, q.colbert!.dim);
  try {
    await model.encode('x', { maxLength: 100_000 });
  } catch (e) {
    const kind: ErrorKind | undefined = (e as { kind?: ErrorKind }).kind;
    if (kind === 'range') console.log('maxLength out of range');
  }
  // @ts-expect-error: texts are strings
  await model.encode(42);
  // @ts-expect-error: the device is one of three
  await load(HF_BGE_M3, { device: 'tpu' });
  // burn's kernels on request, f16 operands where the adapter has shader-f16; what ran
  const burn: Model = await load(HF_BGE_M3, { kernel: 'burn', compute: 'f16' });
  const ran: 'f32' | 'f16' = burn.compute;
  if (burn.kernel === 'burn-f16' || ran === 'f16') console.log('f16 operands');
  // @ts-expect-error: the kernel is one of three
  await load(HF_BGE_M3, { kernel: 'cudnn' });
  // A pack made by `m3 convert --dtype int8`, by URL or as picked files with its manifest.
  const pack: Model = await load('/models/bge-m3-int8/', { dtype: 'int8' });
  const stored: WeightsDtype = pack.dtype;
  const bytes = new Uint8Array(0);
  await load({ config: bytes, tokenizer: bytes, encoder: bytes, colbert: bytes, sparse: bytes, manifest: bytes });
  const integrity: ErrorKind = 'integrity'; // a pack file that is not what m3-pack.json lists
  try {
    await load('https://models.example/bge-m3/');
  } catch (e) {
    const err = e as M3Error;
    if (err.kind === 'http' && err.status === 404) console.log('not there:', err.url);
    else if (err.kind === 'network') console.log('offline or blocked:', err.url);
    else if (err.kind === 'input' && err.missing) console.log('pick these too:', err.missing.join(', '));
    // @ts-expect-error: no such kind
    if (err.kind === 'http404') console.log('never');
  }
  console.log(stored, integrity);
  // @ts-expect-error: no such storage type
  await load('/models/bge-m3-int8/', { dtype: 'int4' });
  await model.dispose();
  await clearCache();
  return span[0] + mean + scored.length + fused.length + d;
}

// The hybrid index: create with a fingerprint, add encode() results, search, show a hit's window.
export async function hybridIndex(model: Model): Promise<number> {
  const fp: ModelFingerprint = await modelFingerprint(model);
  const index: HybridIndex = await openIndex('my-notes', { fingerprint: fp, colbert: 'pooled', poolFactor: 2 });
  const text = 'BGE M3 is an embedding model ...';
  const embedding = await model.encode(text, { colbertSpans: true });
  const ctl = new AbortController();
  const { added, replaced } = await index.add([{ id: 'a.txt', text, meta: { title: 'A' }, embedding }], { signal: ctl.signal });
  const q = await model.encode('what is bge m3?');
  const r: IndexSearchResult = await index.search(q, { k: 5, weights: { colbert: 0.5 }, rrf: false, candidates: DEFAULT_CANDIDATES });
  const hit: IndexHit | undefined = r.hits[0];
  if (hit) {
    const shown = await index.getWindow(hit.id, hit.window.index);
    const w: IndexedWindow | undefined = shown?.window;
    console.log(hit.score, hit.colbert ?? 'not scored', w?.colbertSpans?.length, shown?.text.slice(hit.window.start, hit.window.end));
  }
  const how: 'stored' | 'reencoded' | 'skipped' | 'off' = r.colbert;
  const plain = await openIndex('no-colbert', { storage: 'memory', fingerprint: fp, colbert: 'none', dense: 'f16' });
  await plain.search(q, { reencode: texts => model.encode(texts, { dense: false, sparse: false }) });
  const doc: IndexedDocument | null = await index.get('a.txt');
  for await (const d of index.documents()) console.log(d.id, d.windows.length);
  const st: IndexStats = index.stats();
  const file: Blob = await index.export();
  await index.import(file, { mode: 'merge' });
  await index.remove(['a.txt']);
  try {
    await openIndex('my-notes', { fingerprint: { dim: 32, probe: new Float32Array(32) } });
  } catch (e) {
    const kind = (e as { kind?: ErrorKind }).kind;
    if (kind === 'model' || kind === 'quota') console.log('another model, or storage full');
  }
  // @ts-expect-error: no such ColBERT storage
  await openIndex('x', { colbert: 'fp4' });
  // @ts-expect-error: ids are strings
  await index.remove([1]);
  console.log(sameModel(fp, st.fingerprint), PROBE_TEXT.length, how, doc?.text);
  await index.clear();
  index.close();
  return added + replaced + st.bytes.total + st.memoryBytes + (await deleteIndex('my-notes') ? 1 : 0);
}
