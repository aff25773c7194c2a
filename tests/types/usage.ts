// A user's code against pkg/index.d.ts, checked by `tsc -p tests/types` in the test command: the
// types must accept what the README and pkg/README.md show, and reject misuse (@ts-expect-error).
import {
  load, isCached, clearCache, HF_BGE_M3, DEFAULT_WEIGHTS, denseScore, lexicalScore, colbertScore,
  weightedScore, hybridScores, reciprocalRankFusion,
} from 'bge-m3-web';
import type { Embedding, ErrorKind, Model, ScoreWeights, Scores, WeightsDtype, WindowEmbedding } from 'bge-m3-web';

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
  // A pack made by `m3 convert --dtype int8`, by URL or as picked files with its manifest.
  const pack: Model = await load('/models/bge-m3-int8/', { dtype: 'int8' });
  const stored: WeightsDtype = pack.dtype;
  const bytes = new Uint8Array(0);
  await load({ config: bytes, tokenizer: bytes, encoder: bytes, colbert: bytes, sparse: bytes, manifest: bytes });
  const integrity: ErrorKind = 'integrity'; // a pack file that is not what m3-pack.json lists
  console.log(stored, integrity);
  // @ts-expect-error: no such storage type
  await load('/models/bge-m3-int8/', { dtype: 'int4' });
  await model.dispose();
  await clearCache();
  return span[0] + mean + scored.length + fused.length + d;
}
