// bge-m3-web: BGE-M3 (dense, sparse/lexical, multi-vector ColBERT) in the browser, on WebGPU
// through burn-wgpu (Rust, WebAssembly), with a wasm CPU fallback.
//
//   import { load } from 'bge-m3-web';
//   const model = await load();                         // BAAI/bge-m3 from the Hugging Face hub, cached
//   const doc = await model.encode('What is BGE M3?');  // { dense, sparse, colbert, windows, ... }

/** Where the model files come from:
 *  - a base URL holding the BAAI/bge-m3 file names (`config.json`, `tokenizer.json`,
 *    `pytorch_model.bin` or `model.safetensors`, `colbert_linear.pt`, `sparse_linear.pt`), or a
 *    pack (below); default `HF_BGE_M3`, BAAI/bge-m3 on the Hugging Face hub at a pinned commit;
 *  - local files (an `<input type=file multiple>` / `webkitdirectory` pick, a drop): a `FileList`
 *    or an array of `File`s, matched by file name;
 *  - an object `{ config, tokenizer, encoder, colbert, sparse }` of `Blob`s / `ArrayBuffer`s /
 *    `Uint8Array`s, plus `manifest` (the bytes of `m3-pack.json`) for a pack's files.
 *
 *  A pack is a folder made by `m3 convert --model DIR --out PACK --dtype f16|int8`: `config.json`,
 *  `tokenizer.json`, `model.safetensors` (the encoder in f16, or int8 per row with f32 scales),
 *  `colbert_linear.safetensors`, `sparse_linear.safetensors` (f16) and `m3-pack.json`, which lists
 *  each file's size and SHA-256. A source holding `m3-pack.json` is loaded as a pack: the manifest
 *  is checked (format "bge-m3-pack", version 1, dtype f16 or int8, exactly those five file names,
 *  each with a whole size and 64 lowercase hex digits; else `kind` 'format'), and every file
 *  is checked against its size and SHA-256 as it streams in (else `kind` 'integrity'). At a base
 *  URL, `m3-pack.json` is fetched on every load (the copy cached with the files is used when it
 *  cannot be fetched); an HTTP 404 for it is remembered in the cache, so that a cached model in
 *  BAAI's layout loads without any request. */
export type ModelSource =
  | string
  | URL
  | FileList
  | File[]
  | { config: ModelBytes; tokenizer: ModelBytes; encoder: ModelBytes; colbert: ModelBytes; sparse: ModelBytes; manifest?: ModelBytes };
export type ModelBytes = Blob | ArrayBuffer | Uint8Array;

export type DeviceKind = 'auto' | 'webgpu' | 'cpu';

/** How the weights are stored, downloaded and cached: 'f32' (BAAI's files as they are), 'f16' or
 *  'int8' (a pack, see `ModelSource`). Computation (accumulation, activations) is f32 on the device
 *  either way today. How a loaded pack's weights are held (kept packed or widened to f32, on the
 *  device or in host memory), and so what GPU memory it saves, is the Rust loader's and is
 *  described in the repository's docs/packs.md; the package's tests check a pack's outputs and its
 *  download and cache size, not the memory it takes once loaded. */
export type WeightsDtype = 'f32' | 'f16' | 'int8';

export interface LoadProgress {
  /** File name, e.g. "pytorch_model.bin"; "model" while the weights are moved to the device. */
  file: string;
  /** "download" (from the network), "cache" (from the Cache API, no download), "verify" (a
   *  picked pack file being hashed against its m3-pack.json), "convert" (one of BAAI's files —
   *  pytorch_model.bin, colbert_linear.pt, sparse_linear.pt, tokenizer.json (minified) —
   *  converted to a pack file as it downloads or is read, `dtype` 'f16' / 'int8' on BAAI's layout; `file` is
   *  the source's name, the bytes are the source's) or "build". */
  phase: 'download' | 'cache' | 'verify' | 'convert' | 'build';
  /** Bytes done / total for downloads (total is null when the server sends no length); layers for "build". */
  loaded: number;
  total: number | null;
}

export interface LoadOptions {
  /** "auto" (default): WebGPU on a hardware adapter; the wasm CPU backend where `navigator.gpu`
   *  gives no adapter or a software one (SwiftShader: the CPU backend measured 2-4x as fast, see
   *  `Model.adapter`, which then names the adapter passed over). "webgpu": WebGPU on whatever
   *  adapter there is (an error where none). "cpu": the wasm CPU backend (one thread, SIMD128;
   *  the whole model in wasm memory: an f32 full-size model takes 2.45 GiB, an int8 pack 0.82). */
  device?: DeviceKind;
  /** "default" (default): a WebGPU device with the default limits only (128 MiB per binding),
   *  what most laptops and phones grant; "adapter": every limit the adapter offers. */
  limits?: 'default' | 'adapter';
  /** What the matmuls multiply. 'auto' (default) and 'f32': f32 arithmetic everywhere, compact
   *  (f16, int8) weights widened to f32 in registers inside our kernel, never copied to f32: the
   *  faster choice on every adapter measured (on an NVIDIA H200, native wgpu, full-size model,
   *  512 tokens: an f16 pack ran 1.6x as fast so as with f16 operands; docs/benchmarks.md).
   *  'f16': for an f16 model (`dtype: 'f16'`) where the WebGPU adapter has `shader-f16`, the
   *  linear layers and both attention products take f16 operands in burn's kernels (sums,
   *  results, bias, GELU, LayerNorm and softmax stay f32; within issue 11's f16 bounds on the
   *  test models, docs/packs.md); where the adapter lacks the feature (SwiftShader,
   *  most phones) or on the CPU backend it falls back to f32 arithmetic. `Model.compute` says
   *  which ran. */
  compute?: 'auto' | 'f32' | 'f16';
  /** Which kernels run the matmuls on WebGPU. 'auto' (default) and 'register': ours
   *  (register-blocked, no workgroup memory), the faster on every adapter measured: SwiftShader,
   *  lavapipe and an NVIDIA H200 natively (1.6-2.0x burn's at 512 and 2048 tokens). 'burn':
   *  burn's tiled kernels for f32 weights and attention, for a GPU where ours turn out slower
   *  (compact weights keep our packed kernel, unless `compute: 'f16'`). No effect on the CPU
   *  backend. `Model.kernel` says which ran. */
  kernel?: 'auto' | 'register' | 'burn';
  /** Encoder weights file under a base URL (default "pytorch_model.bin", which every revision of
   *  BAAI/bge-m3 has; "model.safetensors" is smaller to parse where present). Not used for a
   *  pack, whose encoder is always "model.safetensors". */
  encoderFile?: 'pytorch_model.bin' | 'model.safetensors';
  /** The storage type expected of the source. Left out: whatever the source is (a pack's dtype,
   *  else 'f32'). A pack of another dtype rejects with `kind` 'input' before any pack file is
   *  fetched. Another value: TypeError.
   *
   *  'f16' / 'int8' for a base URL in BAAI's layout (no `m3-pack.json` there, e.g. `HF_BGE_M3`):
   *  the package converts the files while they download (the wasm module's PackConverter, on the
   *  thread the model runs on): config.json copied, tokenizer.json minified (the same JSON
   *  without its indentation: 9.1 MB, not 17.1 MB), pytorch_model.bin and the heads' .pt converted as `m3 convert --dtype` does (the same tensors; the encoder's bytes in
   *  the checkpoint's storage order, so its SHA-256 is not `m3 convert`'s), every zip member's
   *  CRC-32 checked. The Cache API keeps the pack (~1.15 GB f16 / ~0.6 GB int8 for BAAI/bge-m3),
   *  never the f32 files: each pack file is written as it is made, and its `m3-pack.json` last,
   *  once all are there; the next load with the same dtype takes it from the cache without any
   *  request (each file checked against that manifest as packs are). A damaged or cut-off source
   *  rejects (`format`: the file named, a CRC-32 mismatch or an archive cut short; `io`: the
   *  connection dropped) and nothing of that file is kept; files finished before a failure or an
   *  abort stay for the next load, which makes only what is missing (the pack is not complete
   *  until then). A cached pack file that fails its checks is made again from its source. f32
   *  files an earlier f32 load cached are converted from the cache. `encoderFile`
   *  'model.safetensors': `kind` 'input' (the converter reads pytorch_model.bin). With `cache:
   *  false`, or where the Cache API does not exist or refuses the files (quota, a private window),
   *  the load converts in memory instead (the pack's size in page or worker memory while loading)
   *  and caches nothing more: the model is the dtype asked for, and the next load converts again.
   *  Picked files (File / Blob) in BAAI's layout are converted the same way as they are read, and
   *  the Cache API keeps the pack under a key made of the files' names, sizes, modification times
   *  and sampled fingerprints (`https://bge-m3-web.invalid/picked/<dtype>/<id>/<file>`): the same
   *  files picked again load the pack from the cache; touched or changed files are converted
   *  again (a file changed in place with the same size and modification time, outside the 16
   *  sampled 64 KiB blocks, would not be noticed). Bytes (Uint8Array / ArrayBuffer) are converted
   *  in memory and never cached. `config.json` is reported with phase 'convert' for them. They
   *  must include pytorch_model.bin (the converter's input; model.safetensors alone: `kind`
   *  'input' with `missing`); a damaged or cut-short one is `kind` 'format', a file that can no
   *  longer be read 'io'. */
  dtype?: WeightsDtype;
  /** Keep downloaded files in the Cache API under this name (default "bge-m3-web"); false: no
   *  cache. A cached file is used when its size and a sampled fingerprint match the record stored
   *  with it; a pack file's record also names the SHA-256 it was checked against when stored, and
   *  must name the one the current m3-pack.json lists (a changed pack refetches the files that
   *  changed). Cached bytes are not hashed again on a later load. A pack converted from BAAI's
   *  files (see `dtype`) is kept under keys of its own,
   *  `https://bge-m3-web.invalid/converted/<dtype>/<encodeURIComponent(base)>/<file>`; a base's
   *  converted pack is not re-checked against the server (`clearCache` to convert again). */
  cache?: string | false;
  /** Run the model in a module Web Worker (default true). false: on the calling thread. */
  worker?: boolean;
  /** Per-file progress: bytes downloaded (or read from cache), then the layers built. */
  onProgress?: (p: LoadProgress) => void;
  /** Aborting rejects with a DOMException named "AbortError". */
  signal?: AbortSignal;
}

/** Token id -> weight, ids in order of first appearance. */
export interface SparseVector {
  ids: Uint32Array;
  weights: Float32Array;
  /** Token strings (e.g. "▁search"), with `tokenStrings: true`. */
  tokens?: string[];
}

/** `rows` unit vectors of `dim` floats, row-major. */
export interface MultiVector {
  data: Float32Array;
  rows: number;
  dim: number;
}

/** The outputs for one window of a text. */
export interface WindowEmbedding {
  /** UTF-16 character span [start, end) of the text this window covers; the spans of a text's
   *  windows together cover the whole text (overlaps included). */
  start: number;
  end: number;
  /** Token span [tokenStart, tokenEnd) of the text's tokens (specials excluded). */
  tokenStart: number;
  tokenEnd: number;
  /** `<s>` ... `</s>`, at most `maxLength` ids. */
  inputIds: Uint32Array;
  dense?: Float32Array;
  sparse?: SparseVector;
  /** One vector per token after `<s>` (`</s>` included), as FlagEmbedding. */
  colbert?: MultiVector;
  /** UTF-16 character span of each ColBERT row in the text (`</s>` gets an empty span at the window end). */
  colbertSpans?: Uint32Array;
}

/** The outputs for one text. A text of at most `maxLength` tokens has one window and its
 *  document-level outputs are exactly FlagEmbedding's. A longer text is cut into windows and:
 *  - dense: the L2-normalised mean of the windows' dense vectors, weighted by their token counts;
 *  - sparse: per token id the largest weight over the windows;
 *  - colbert: the windows' vectors concatenated, each overlapping token taken once (from the
 *    window where it is farther from the edge), one `</s>` vector at the end. */
export interface Embedding {
  /** All token ids of the text: `<s>` ... `</s>`, no truncation (unless `truncate: true`). */
  inputIds: Uint32Array;
  dense?: Float32Array;
  sparse?: SparseVector;
  colbert?: MultiVector;
  colbertSpans?: Uint32Array;
  windows: WindowEmbedding[];
  /** True when `truncate: true` cut the text. */
  truncated: boolean;
}

export interface EncodeProgress {
  /** Windows (all texts together) and tokens encoded so far, and in all. */
  windowsDone: number;
  windows: number;
  tokensDone: number;
  tokens: number;
}

export interface EncodeOptions {
  /** Which outputs (all true by default). Outputs not asked for are not computed or read back. */
  dense?: boolean;
  sparse?: boolean;
  colbert?: boolean;
  /** Largest window in tokens, `<s>` and `</s>` included: from 3 to the model's limit
   *  (`model.maxTokens`, 8192 for BAAI/bge-m3), which is also the default. Out of range: RangeError. */
  maxLength?: number;
  /** Tokens shared by consecutive windows of a long text: default min(256, half a window), at
   *  most half a window. */
  overlap?: number;
  /** Cut a long text at `maxLength` (as FlagEmbedding does) instead of windowing it. */
  truncate?: boolean;
  /** Most windows per forward pass (default 16) and most padded tokens per pass (default 8192);
   *  windows are sorted by length first, so short texts are not padded to long ones. */
  batchSize?: number;
  maxBatchTokens?: number;
  /** Also return the token strings of the sparse ids. */
  tokenStrings?: boolean;
  /** Also return the character span of each ColBERT row. */
  colbertSpans?: boolean;
  onProgress?: (p: EncodeProgress) => void;
  /** Aborting rejects with a DOMException named "AbortError"; the model stays usable. */
  signal?: AbortSignal;
}

export interface ScoreOptions extends Omit<EncodeOptions, 'dense' | 'sparse' | 'colbert' | 'tokenStrings' | 'colbertSpans'> {
  /** The weights of compute_score's weighted sums; a missing mode takes its default
   *  (`DEFAULT_WEIGHTS`). Each a finite number >= 0. */
  weights?: Partial<ScoreWeights>;
}

/** What kind of failure an error is (`error.kind`, on every error the package throws or rejects
 *  with, except AbortErrors; see `M3Error`. The package decides on the kind, never on the
 *  message, and so should its callers): a model file's contents (`format`: not a checkpoint or
 *  damaged, or an `m3-pack.json` that fails its checks; `weights`: a tensor missing or mis-shaped;
 *  `config`; `tokenizer`), a pack file whose size or SHA-256 is not what its `m3-pack.json` lists
 *  (`integrity`: the message names the file and both values, `url` is set for a download; the
 *  download was not kept in the cache and nothing of it reached the model; loading again
 *  downloads it again), a model host that could not be reached (`network`: offline, a name that
 *  does not resolve, a refused connection, or a request the browser blocked: CORS, the page's
 *  Content-Security-Policy; `url`), a host that answered with an HTTP error (`http`: `status`,
 *  e.g. 404 for a missing file, and `url`), a download or cache write that broke off or came
 *  short (`io`, also any other failure reading a file), the caller's input (`input`: a bad
 *  argument (then a TypeError), a `dtype` the source does not have, picked files that lack some
 *  (`missing` names them), a call of a disposed model; `range` for an option out of range, a
 *  RangeError), the GPU (`device`: no adapter, a lost device; never a reason to drop cached
 *  files), or the wasm instance died (`crashed`: a panic, a trap, out of memory; every pending and
 *  later call of that model rejects so within seconds, its worker is ended, and `load()` again
 *  gives a working model). The hybrid index (`openIndex`) adds: `model` (vectors or a file of
 *  another model than the index's: the fingerprints differ), `quota` (the browser's storage for
 *  the site is full: the write was not kept, the index is as it was), and uses `input` (a call's
 *  arguments), `format` (an index file, or a damaged stored index) and `io` (any other storage
 *  failure). */
export type ErrorKind = 'format' | 'weights' | 'config' | 'tokenizer' | 'integrity' | 'network' | 'http' | 'io' | 'input' | 'range' | 'device' | 'crashed' | 'model' | 'quota';

/** The errors of the package (a model's worker passes all of these fields on to the page). */
export interface M3Error extends Error {
  kind: ErrorKind;
  /** `http`: the HTTP status the host answered with (404: the file is not there). */
  status?: number;
  /** `network`, `http`, `io` (downloads), `integrity` (downloads): the URL of the file. */
  url?: string;
  /** `input`, picked files: the file names the source lacks (e.g. "tokenizer.json"). */
  missing?: string[];
}

export interface Tokenized {
  ids: Uint32Array;
  /** UTF-16 spans [starts[i], ends[i]) per token; specials get empty spans. */
  starts: Uint32Array;
  ends: Uint32Array;
}

export interface ScoreWeights {
  dense: number;
  sparse: number;
  colbert: number;
}

/** FlagEmbedding's `compute_score` outputs for one pair. */
export interface Scores {
  dense: number;
  sparse: number;
  colbert: number;
  'sparse+dense': number;
  'colbert+sparse+dense': number;
}

export interface Model {
  /** "webgpu" or "cpu". */
  readonly backend: 'webgpu' | 'cpu';
  /** The adapter, e.g. "NVIDIA GeForce RTX 4070 (BrowserWebGpu)" or "wasm CPU (burn flex)". */
  readonly adapter: string;
  /** 1024 for BAAI/bge-m3. */
  readonly hiddenSize: number;
  /** Largest window (8192). */
  readonly maxTokens: number;
  /** How the loaded weights were stored and downloaded: 'f32' for BAAI's layout, else the pack's
   *  dtype (see `WeightsDtype`). */
  readonly dtype: WeightsDtype;
  /** 'f16' where the matmuls take f16 operands (see `LoadOptions.compute`), else 'f32'. The
   *  adapter string ends in "shader-f16" where the adapter has it. */
  readonly compute: 'f32' | 'f16';
  /** The kernel the linear layers ran: 'register' (ours, f32 weights), 'register-packed' (ours,
   *  reading f16 or int8 words), 'burn' (burn's), 'burn-f16' (burn's on f16 operands) or
   *  'burn-widened' (the CPU backend, a compact matrix widened to f32 for each pass). */
  readonly kernel: 'register' | 'register-packed' | 'burn' | 'burn-f16' | 'burn-widened';
  encode(text: string, options?: EncodeOptions): Promise<Embedding>;
  encode(texts: string[], options?: EncodeOptions): Promise<Embedding[]>;
  /** Token ids and UTF-16 spans of a text, untruncated. */
  tokenize(text: string): Promise<Tokenized>;
  /** Vocabulary strings of token ids (e.g. "▁search"). */
  idsToTokens(ids: ArrayLike<number>): Promise<string[]>;
  /** FlagEmbedding's five scores of a query against each passage (encodes both, all three
   *  outputs). A passage longer than the window is scored by its document-level outputs (its
   *  windows merged), unless `truncate`, which is FlagEmbedding's behaviour. */
  score(query: string, passages: string[], options?: ScoreOptions): Promise<Scores[]>;
  /** Frees the worker, the device memory and the wasm instance. */
  dispose(): Promise<void>;
}

export function load(source?: ModelSource, options?: LoadOptions): Promise<Model>;

/** The default source: BAAI/bge-m3 on the Hugging Face hub, pinned to commit
 *  5617a9f61b028005a4858fdac845db406aefb181
 *  (`https://huggingface.co/BAAI/bge-m3/resolve/5617a9f61b028005a4858fdac845db406aefb181/`), so
 *  that the files cannot change under an app. Pass another base URL to load another revision
 *  (e.g. `.../resolve/main/`). */
export const HF_BGE_M3: string;

/** Removes the cached model files (Cache API) under `name` (default "bge-m3-web"). */
export function clearCache(name?: string): Promise<boolean>;

/** Whether every file that `load(base, { encoderFile, dtype })` needs is in the Cache API, so that
 *  loading downloads no model file (presence only: `load` still verifies each cached copy). A pack
 *  is recognised by the `m3-pack.json` an earlier load cached, and its files must have been stored
 *  for the SHA-256s it lists (and be of `dtype` when given); loading it still fetches
 *  `m3-pack.json` itself when online. Otherwise `dtype` 'f16' / 'int8' asks whether the pack
 *  converted from BAAI's files at `base` is complete in the cache. */
export function isCached(base?: string, options?: { encoderFile?: 'pytorch_model.bin' | 'model.safetensors'; cache?: string | false; dtype?: WeightsDtype }): Promise<boolean>;

// Scoring helpers (FlagEmbedding's formulas), usable on stored embeddings without the model.
export function denseScore(q: Float32Array, p: Float32Array): number;
export function lexicalScore(q: SparseVector | Map<number, number>, p: SparseVector | Map<number, number>): number;
export function colbertScore(q: Float32Array, p: Float32Array, dim: number): number;
/** FlagEmbedding's default weights: `{ dense: 0.4, sparse: 0.2, colbert: 0.4 }` (frozen). */
export const DEFAULT_WEIGHTS: Readonly<ScoreWeights>;
/** compute_score's weighted mean over the modes that `weights` names (omit a mode to leave it
 *  out): `{ dense, sparse }` gives 'sparse+dense', all three 'colbert+sparse+dense'. */
export function weightedScore(scores: { dense: number; sparse: number; colbert: number }, weights?: Partial<ScoreWeights>): number;
export function hybridScores(q: Embedding | WindowEmbedding, p: Embedding | WindowEmbedding, weights?: ScoreWeights): Scores;
/** The default k of `reciprocalRankFusion`: 60. */
export const RRF_K: number;
/** Reciprocal-rank fusion: `rankings` are lists of keys, best first; returns [key, score] best first,
 *  score = sum over rankings of 1 / (k + rank), rank from 1. */
export function reciprocalRankFusion<K>(rankings: K[][], k?: number): [K, number][];

// ── The hybrid index (pkg/src/index/) ─────────────────────────────────────────────────────────
// A corpus of embedded documents kept compactly (IndexedDB in a browser, or memory), searched in
// two stages: the dense lane (one int8 vector per window, scanned whole) and the sparse postings
// (token id -> windows) each propose their best `candidates` windows; those are read from storage
// in one transaction and scored exactly (dense from the stored codes, lexical from the stored
// list, ColBERT MaxSim over the stored int8 rows); each document is ranked by its best window,
// with `weightedScore` (FlagEmbedding's formula) or `reciprocalRankFusion`.
//
//   import { load, openIndex, modelFingerprint } from 'bge-m3-web';
//   const model = await load();
//   const index = await openIndex('my-notes', { fingerprint: await modelFingerprint(model) });
//   const opts = { colbertSpans: true };                          // the index keeps token spans
//   await index.add([{ id: 'a.txt', text, meta: { title: 'A' }, embedding: await model.encode(text, opts) }]);
//   const r = await index.search(await model.encode('query'), { k: 10 });
//   for (const h of r.hits) console.log(h.id, h.score, h.window.start, h.window.end);
//   const best = await index.getWindow(r.hits[0].id, r.hits[0].window.index); // text, ids, spans, rows
//
// In page memory between queries: the dense lane (dim bytes + 4 a window, int8),
// the postings (6 bytes an entry, plus a tail of recent ones until merged) and a few bytes a
// window; nothing per token. Per token in storage (dim 1024): ~1.04 KB with int8 ColBERT rows,
// ~0.53 KB pooled, ~18 B without (measured: tests/js/index.test.mjs).

/** Which model made an index's vectors: `dim` (its hidden size) and `probe`, its unit dense
 *  vector of `PROBE_TEXT`. */
export interface ModelFingerprint {
  dim: number;
  probe: Float32Array;
}
/** The text whose dense vector is a model's fingerprint (several scripts). */
export const PROBE_TEXT: string;
/** A loaded model's fingerprint (one encode of `PROBE_TEXT`, dense only). */
export function modelFingerprint(model: Model, options?: { signal?: AbortSignal }): Promise<ModelFingerprint>;
/** Whether two fingerprints are of the same model: the same `dim` and probe vectors whose cosine
 *  is above 0.999 (backends and hardware differ in the 6th decimal; another model or revision by
 *  far more). The package owns this rule. */
export function sameModel(a: ModelFingerprint, b: ModelFingerprint): boolean;

/** 'indexeddb': a database per index (`bge-m3-index:<name>`), kept across page loads; 'memory':
 *  Maps in this JS realm (Node, workers, tests), kept until `deleteIndex` or the realm ends;
 *  opening the same name again in the realm gives the same records. */
export type IndexStorage = 'indexeddb' | 'memory';

export interface IndexOptions {
  /** Default: 'indexeddb' where `indexedDB` exists, else 'memory'. */
  storage?: IndexStorage;
  /** Needed to create an index (kind 'input' without it); stored then. Given when opening an
   *  existing index, it must be the same model's (`sameModel`), else kind 'model'. */
  fingerprint?: ModelFingerprint;
  /** Dense vectors as stored: 'int8' (default; one f32 scale per vector, ~1 KB a window at 1024
   *  dims) or 'f16' (2 KB a window, closer to f32). Page memory is the same either way: the
   *  dense lane holds int8 vectors (an f16 index's rounded from f16 on open), and an f16 index
   *  rescores its candidates' dense from the stored f16. */
  dense?: 'int8' | 'f16';
  /** ColBERT rows kept per window: 'int8' (default; one row per token, per-row f32 scale),
   *  'pooled' (rows -> ceil(rows / poolFactor) by merging the most similar rows, centroid
   *  linkage, means re-normalised; then int8; about half the storage, a coarser MaxSim; pooling
   *  costs O(rows² · dim) per window when adding), or 'none' (no rows: search scores dense +
   *  sparse, or re-encodes the candidates with `reencode`). */
  colbert?: 'int8' | 'pooled' | 'none';
  /** Pooling factor for 'pooled', a whole number from 2 to 16 (default 2). */
  poolFactor?: number;
}
// The options of an existing index are its stored ones: options given when opening it are
// ignored (stats().options says what they are); an import with mode 'replace' takes the file's.

/** A document to add: `embedding` is `model.encode(text, { colbertSpans: true })`'s result (all
 *  windows; each window needs dense, sparse, and colbert + colbertSpans unless the index keeps
 *  no ColBERT rows). */
export interface IndexItem {
  /** 1 to 1000 characters; adding an id that is present replaces that document. */
  id: string;
  /** The text the embedding was made from (window and token spans must lie inside it). */
  text: string;
  /** Any JSON value (a JSON copy is stored; at most 1 MiB of JSON); left out: null. */
  meta?: unknown;
  embedding: { windows: WindowEmbedding[] };
}

export interface IndexWriteOptions {
  /** Aborting rejects with a DOMException named "AbortError" and nothing of the call is kept
   *  (unless the write had already committed, then the call resolves). */
  signal?: AbortSignal;
}

export interface IndexSearchOptions {
  /** Documents returned, 1 to 10000 (default 10). */
  k?: number;
  /** A mode of weight 0 proposes no candidates and is left out of the hybrid score (its ColBERT
   *  rows are not read); default `DEFAULT_WEIGHTS`. With dense and sparse both 0, the dense lane
   *  (else the sparse) still proposes the candidates. */
  weights?: Partial<ScoreWeights>;
  /** Rank documents by reciprocal-rank fusion of the per-mode rankings (modes of weight > 0) of
   *  their best windows, instead of the weighted score. */
  rrf?: boolean;
  /** Windows each lane proposes for exact scoring (default `DEFAULT_CANDIDATES`, 64; at least
   *  k is used). On the synthetic agreement corpus (2,000 windows of 1024 dims, int8), 64 gave
   *  the exhaustive f32 top-10 in 20 of 20 queries, 32 in 20, 16 in 18. */
  candidates?: number;
  /** For an index without ColBERT rows: re-encodes the candidates' window texts (e.g.
   *  `texts => model.encode(texts, { dense: false, sparse: false })`) to score them with ColBERT
   *  (f32). Without it such an index scores dense + sparse only (`colbert: 'skipped'`). */
  reencode?: (texts: string[]) => Promise<Array<{ colbert?: MultiVector }>>;
  signal?: AbortSignal;
}

export interface IndexHit {
  id: string;
  meta: unknown;
  /** What the hits are ordered by: `hybrid`, or the fused score with `rrf`. */
  score: number;
  /** weightedScore of the best window's scores over the modes used (see `IndexSearchResult.colbert`). */
  hybrid: number;
  /** The best window's scores: dense (query · stored int8/f16 vector), sparse (lexical, from the
   *  stored weights), colbert (MaxSim over the stored rows, or re-encoded); null where the query
   *  had no such output, or for ColBERT when it was not scored. */
  dense: number | null;
  sparse: number | null;
  colbert: number | null;
  /** The best window: its index in the document, its UTF-16 span [start, end) in the text and
   *  its token span (see WindowEmbedding). */
  window: { index: number; start: number; end: number; tokenStart: number; tokenEnd: number };
}

export interface IndexSearchResult {
  /** Best first, one per document. An index with no documents gives no hits (not an error). */
  hits: IndexHit[];
  /** Windows scored exactly (the union of the lanes' candidates). */
  candidates: number;
  /** How ColBERT was scored: 'stored' (the index's rows), 'reencoded' (`reencode`), 'skipped'
   *  (an index without rows and no `reencode`: the hybrid is over dense and sparse), 'off'
   *  (weight 0). */
  colbert: 'stored' | 'reencoded' | 'skipped' | 'off';
  /** Milliseconds: the dense lane, the sparse postings, reading the candidates' records, ColBERT
   *  scoring (or re-encoding), and the whole search. */
  timings: { dense: number; sparse: number; read: number; colbert: number; total: number };
}

/** A stored window, as `get` returns it (vectors dequantized: int8/f16 values as f32). */
export interface IndexedWindow {
  start: number;
  end: number;
  tokenStart: number;
  tokenEnd: number;
  inputIds: Uint32Array;
  /** Each token's UTF-16 span in the text, per ColBERT position (token `inputIds[r + 1]` is
   *  position r; `</s>` has an empty span at the window's end); absent for a window added
   *  without them (an index without ColBERT rows). */
  colbertSpans?: Uint32Array;
  dense: Float32Array;
  sparse: SparseVector;
  /** The stored rows: one per token after `<s>`, or the pooled rows; absent without ColBERT. */
  colbert?: MultiVector;
  /** 'pooled': for each token position, the pooled row that stands for it. */
  colbertAssign?: Uint16Array;
}

export interface IndexedDocument {
  id: string;
  text: string;
  meta: unknown;
  windows: IndexedWindow[];
}

export interface IndexStats {
  name: string;
  storage: IndexStorage;
  documents: number;
  windows: number;
  /** Tokens of all windows, `<s>` and `</s>` included (an overlap counts in each window). */
  tokens: number;
  /** Stored bytes by part: the bytes of the stored typed arrays and texts (IndexedDB's own
   *  overhead and compression are not counted): dense (codes + scale), sparse (ids + f32 weights),
   *  colbert (codes + scales + pooled assignment), tokens (inputIds + coded spans), text (UTF-8),
   *  docs (ids, meta JSON, window spans), and their total. */
  bytes: { dense: number; sparse: number; colbert: number; tokens: number; text: number; docs: number; total: number };
  /** Bytes this instance holds in page memory between calls (lanes, postings, tables, search
   *  scratch, per-document entries estimated). */
  memoryBytes: number;
  options: Required<Omit<IndexOptions, 'storage' | 'fingerprint'>> & { dim: number };
  fingerprint: ModelFingerprint;
}

/** An open index. Writes (add, remove, import, clear) are each one atomic transaction: all of it
 *  or nothing, in storage and in memory (memory changes only once storage has committed); a
 *  full storage rejects with kind 'quota' and leaves the index as it was. Writes of one instance
 *  run one after another. Another instance or tab writing the same index is noticed by the next
 *  call (the index reloads itself from storage); `stats()` shows this instance's view until then. */
export interface HybridIndex {
  readonly name: string;
  readonly storage: IndexStorage;
  /** Adds documents, replacing those of the same ids; everything is checked first (kind 'input'
   *  naming the item and field: vectors of another width, NaN / Infinity, a non-unit dense vector
   *  or ColBERT row, ids outside the 250,002-token vocabulary, spans outside the text, missing
   *  outputs, an empty or repeated id, meta that is not JSON). */
  add(items: IndexItem[], options?: IndexWriteOptions): Promise<{ added: number; replaced: number }>;
  /** Removes documents by id (ids not present are ignored). */
  remove(ids: string[], options?: IndexWriteOptions): Promise<{ removed: number }>;
  /** Searches with a query's `encode()` output (dense and sparse as the weights need them;
   *  colbert when ColBERT is scored). A query without an output its weight needs: kind 'input'. */
  search(query: Pick<Embedding, 'dense' | 'sparse' | 'colbert'>, options?: IndexSearchOptions): Promise<IndexSearchResult>;
  /** A document with all its windows, or null. */
  get(id: string): Promise<IndexedDocument | null>;
  /** One window of a document (a hit's `window.index`), with the document's text and meta; or null. */
  getWindow(id: string, index: number): Promise<{ id: string; text: string; meta: unknown; index: number; window: IndexedWindow } | null>;
  /** Every document's id, meta and number of windows, in id order (no text or vectors read). */
  list(): Promise<Array<{ id: string; meta: unknown; windows: number }>>;
  /** Every document, as `get` gives it, in id order (one read per document). */
  documents(): AsyncIterable<IndexedDocument>;
  stats(): IndexStats;
  /** The whole index as one file (one read snapshot; built in memory): the stored records as
   *  they are (int8/f16 codes, not f32), the options and the fingerprint. */
  export(): Promise<Blob>;
  /** Reads a file of `export()`. Everything is checked before anything is written (kind 'format'
   *  naming the document and field: sizes, offsets, array types, dims, NaN, token ids, repeated
   *  ids, scales, spans inside the text, pooled rows; kind 'model' for another model's file).
   *  'replace' (default): the index becomes the file (its options too); 'merge': the file's
   *  documents are added, replacing those of the same ids (the options must be the index's, else
   *  kind 'format'). Files up to 2 GiB (read whole into memory). */
  import(file: Blob, options?: IndexWriteOptions & { mode?: 'replace' | 'merge' }): Promise<{ added: number; replaced: number }>;
  /** Removes every document (the options and fingerprint stay). */
  clear(options?: IndexWriteOptions): Promise<void>;
  /** Closes this instance (later calls: kind 'input'); the stored index stays. */
  close(): void;
}

/** Opens the index `name` (1 to 200 characters), creating it when it does not exist (then
 *  `options.fingerprint` is needed), and reads its dense and sparse lanes into memory. */
export function openIndex(name: string, options?: IndexOptions): Promise<HybridIndex>;
/** Deletes the index `name` from `options.storage` (default as `openIndex`); open instances of
 *  it stop working (kind 'input'). Resolves true when deleted (memory: false when there was none). */
export function deleteIndex(name: string, options?: { storage?: IndexStorage }): Promise<boolean>;
/** The default candidate budget per lane (64). */
export const DEFAULT_CANDIDATES: number;

// Portable export (pkg/src/index/portable.js; the repository's docs/portable-export.md): the
// windows of embedded documents as JSON lines for a server engine, when a corpus outgrows the
// device.
//
//   const lines = toJsonl(index.documents(), { format: 'qdrant' });   // or [{ id, text, meta, windows: emb.windows }]
//   const file = new Blob(await Array.fromAsync(lines), { type: 'application/jsonl' });
//   const schema = portableSchema('qdrant', model.hiddenSize);         // PUT /collections/{name} body

/** The engines `toJsonl` and `portableSchema` write for. */
export type PortableFormat = 'qdrant' | 'milvus';
export const PORTABLE_FORMATS: readonly PortableFormat[];

/** A document as `toJsonl` reads it: the shape of `index.documents()`'s items, or of `encode()`'s
 *  output with an id (`{ id, text, meta, windows: embedding.windows }`). */
export interface PortableDocument {
  /** A non-empty string (well-formed UTF-16) or a safe integer; unique within one export. In
   *  Milvus rows, a number becomes its decimal string (`doc_id` is a VARCHAR). */
  id: string | number;
  /** The whole text; each window's `[start, end)` slice goes into its point. */
  text: string;
  /** Any JSON value (written as `JSON.stringify` writes it); left out: null. */
  meta?: unknown;
  /** Each needs start/end (inside `text`), tokenStart/tokenEnd, and `dense` and `sparse` (optional
   *  in the type, as in `encode()`'s, but a window without them is refused, kind 'input');
   *  `colbert` where it is to be exported. Dequantized values are exported as they are. */
  windows: Array<Pick<WindowEmbedding, 'start' | 'end' | 'tokenStart' | 'tokenEnd'> & {
    dense?: Float32Array | number[];
    sparse?: { ids: Uint32Array | number[]; weights: Float32Array | number[] };
    colbert?: MultiVector;
  }>;
}

export interface ToJsonlOptions {
  format: PortableFormat;
  /** ColBERT rows in each point (`vector.colbert`, Qdrant only): default true for 'qdrant' (a
   *  window without `colbert` gets no ColBERT vector), false for 'milvus'; true with 'milvus'
   *  throws (kind 'input'): Milvus' common releases have no multi-vector field type. */
  colbert?: boolean;
  /** The dense size every window must have (default: the first window's). */
  dim?: number;
}

/** One JSON line (ending in "\n") per window, documents in order, windows in order. Numbers are
 *  float32 values written with 9 significant digits (the same float32 when read back). Per window:
 *  - 'qdrant': `{"id": <pointId>, "vector": {"dense": [dim], "sparse": {"indices": [...],
 *    "values": [...]}, "colbert"?: [[dim], ...]}, "payload": {"doc_id", "window", "start", "end",
 *    "token_start", "token_end", "text", "meta"}}` — a point for `upsert` / `upload_points`;
 *  - 'milvus': `{"id": <pointId>, "dense": [dim], "sparse": {"<token id>": weight, ...},
 *    "doc_id": "<string>", "window", "start", "end", "token_start", "token_end", "text", "meta"}` —
 *    a row for `insert`; zero sparse weights are left out (Milvus drops them).
 *  `start`/`end`: the window's UTF-16 span in the text, `text` that slice; `window`: the
 *  window's index in its document. A document is checked whole before its lines come; a bad
 *  one rejects with kind 'input' naming the document, window and field: a repeated document id,
 *  a span outside the text, a missing or non-finite vector, a dense size unlike the others,
 *  repeated sparse ids; for Milvus also a negative sparse weight, a window whose sparse vector
 *  has no weight above 0 (Milvus refuses such a row) and a window text over 65,535 UTF-8 bytes.
 *  Bad options: TypeError with kind 'input'. */
export function toJsonl(documents: Iterable<PortableDocument> | AsyncIterable<PortableDocument>, options: ToJsonlOptions): AsyncIterable<string>;

/** The point / row id of window `window` of document `docId`: a UUID (version 8) from the first
 *  16 bytes of the SHA-256 of the UTF-8 of `JSON.stringify([docId, window])`, e.g.
 *  `pointId('a.txt', 0)` = "6815090d-3c7f-8b67-9085-e8d2724581e9". The same in every export. */
export function pointId(docId: string | number, window: number): string;

export interface PortableSchemaOptions {
  /** Qdrant's `colbert` multivector (MAX_SIM, no HNSW graph): default true for 'qdrant'; 'milvus'
   *  takes false only. */
  colbert?: boolean;
  /** Exact dense search: Qdrant `hnsw_config: { m: 0 }` (a full scan), Milvus index FLAT; default
   *  false (Qdrant's HNSW, Milvus AUTOINDEX: approximate, faster on large collections). */
  exact?: boolean;
  /** Milvus `collectionName` (default "bge_m3"); Qdrant names the collection in the URL. */
  name?: string;
}

/** The collection JSON `toJsonl`'s lines need, for `dim`-dimensional vectors (1024 for BAAI/bge-m3):
 *  - 'qdrant': the body of `PUT /collections/{name}`: `{ vectors: { dense: { size, distance:
 *    'Dot' }, colbert: { size, distance: 'Dot', multivector_config: { comparator: 'max_sim' },
 *    hnsw_config: { m: 0 } } }, sparse_vectors: { sparse: {} } }`. Dot, as the package scores
 *    (the vectors are unit length: cosine). Qdrant's MAX_SIM is the sum over query rows, the
 *    package's ColBERT score the mean: the same order, scores times the query's row count.
 *  - 'milvus': the body of REST v2 `collections/create`: `{ collectionName, schema: { autoId:
 *    false, enableDynamicField: false, fields: [id VarChar(36) primary, dense FloatVector(dim),
 *    sparse SparseFloatVector, doc_id VarChar, window/start/end/token_start/token_end Int64,
 *    text VarChar(65535), meta JSON nullable] }, indexParams: [dense IP, sparse IP
 *    SPARSE_INVERTED_INDEX] }`.
 *  Bad arguments: TypeError with kind 'input'. */
export function portableSchema(format: PortableFormat, dim: number, options?: PortableSchemaOptions): object;
