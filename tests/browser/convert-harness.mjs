// Runs inside the test page for tests/browser/convert.test.mjs: BAAI's f32 files converted to a
// pack while they download (`load(url, { dtype: 'f16' | 'int8' })` on a base URL without
// m3-pack.json), through the package's public API; the Cache API inspected with the package's own
// key scheme (files.js: convertedBase, metaKey). Every function returns plain data for Node.
import { load, clearCache, isCached } from '/pkg/src/index.js';
import { cosine, againstReference } from '/tests/browser/pack-bounds.mjs';
import { convertedBase, metaKey } from '/pkg/src/files.js';

const PACK_FILES = ['config.json', 'tokenizer.json', 'model.safetensors', 'colbert_linear.safetensors', 'sparse_linear.safetensors'];
const SOURCES = ['config.json', 'tokenizer.json', 'pytorch_model.bin', 'colbert_linear.pt', 'sparse_linear.pt'];

const errorOf = e => ({ name: e?.name, message: e?.message ?? String(e), kind: e?.kind });
const abs = p => new URL(p, location.href).href;
function maxDiff(a, b) {
  let d = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < Math.min(a.length, b.length); i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** One load (events as "file:phase"), and on success the model's info; the model is returned
 *  too, for the caller to use and dispose. */
async function loadWith(base, options) {
  const events = [];
  const t = performance.now();
  try {
    const model = await load(base, { device: 'cpu', ...options, onProgress: p => { events.push({ ...p, at: performance.now() - t }); options.onProgress?.(p); } });
    return { model, ms: performance.now() - t, phases: [...new Set(events.map(e => `${e.file}:${e.phase}`))], events };
  } catch (e) {
    return { err: errorOf(e), ms: performance.now() - t, phases: [...new Set(events.map(e => `${e.file}:${e.phase}`))], events };
  }
}

/** BAAI's files at `base` as a caller holds them: `picked` 'files' (File objects, as an <input>
 *  gives them, modified at `stamp`: ms since 1970, as the disk would say) or 'bytes' (`{ config,
 *  tokenizer, encoder, colbert, sparse }` of Uint8Arrays). */
export async function baaiFiles(base, picked, stamp = 0) {
  const bytes = {};
  for (const name of SOURCES) bytes[name] = new Uint8Array(await (await fetch(base + name)).arrayBuffer());
  if (picked === 'files') return SOURCES.map(name => new File([bytes[name]], name, { lastModified: stamp }));
  const [config, tokenizer, encoder, colbert, sparse] = SOURCES.map(name => bytes[name]);
  return { config, tokenizer, encoder, colbert, sparse };
}

/** `base` (or BAAI's files from it, `picked`: see baaiFiles) loaded as `dtype` (converted, or from the cache), against FlagEmbedding's f32 reference
 *  (texts of at most `maxItemTokens` tokens): per text the dense cosine, the smallest ColBERT row
 *  cosine, the largest sparse weight difference, same ids and rows (packs.test.mjs's measures).
 *  With `pack`, the same texts through that pack (made by `m3 convert`), compared exactly. */
export async function convertParity({ base, picked, stamp, dtype, cache, worker = true, reference, pack, maxItemTokens = Infinity }) {
  const ref = await (await fetch(reference)).json();
  const items = ref.items.filter(i => i.input_ids.length <= maxItemTokens);
  const first = await loadWith(picked ? await baaiFiles(base, picked, stamp) : base, { dtype, cache, worker });
  if (first.err) return { err: first.err, phases: first.phases };
  const encode = m => m.encode(items.map(i => i.text), { truncate: true, batchSize: 4 });
  const t = performance.now();
  const out = await encode(first.model);
  const encodeMs = performance.now() - t;
  const info = { dtype: first.model.dtype, backend: first.model.backend, adapter: first.model.adapter, loadMs: first.ms, encodeMs, phases: first.phases };
  await first.model.dispose();
  const texts = againstReference(items, out);
  let vsPack = null;
  if (pack) {
    const other = await load(pack, { device: 'cpu', dtype, cache: false, worker });
    const theirs = await encode(other);
    const packDtype = other.dtype;
    await other.dispose();
    vsPack = { dtype: packDtype, dense: 0, sparse: 0, colbert: 0, sameSparseIds: true, sameRows: true };
    out.forEach((got, n) => {
      const want = theirs[n];
      vsPack.dense = Math.max(vsPack.dense, maxDiff(got.dense, want.dense));
      vsPack.colbert = Math.max(vsPack.colbert, maxDiff(got.colbert.data, want.colbert.data));
      vsPack.sparse = Math.max(vsPack.sparse, maxDiff(got.sparse.weights, want.sparse.weights));
      vsPack.sameSparseIds &&= JSON.stringify([...got.sparse.ids]) === JSON.stringify([...want.sparse.ids]);
      vsPack.sameRows &&= got.colbert.rows === want.colbert.rows;
    });
  }
  return { ...info, texts, vsPack };
}

/** A safetensors file's tensors: name -> { dtype, shape, bytes }, and its metadata. */
function safetensors(buf) {
  const n = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    tensors[name] = { dtype: t.dtype, shape: t.shape, bytes: new Uint8Array(buf, 8 + n + t.data_offsets[0], t.data_offsets[1] - t.data_offsets[0]) };
  }
  // The order of the tensors' bytes in the file.
  const order = Object.keys(tensors).sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
  return { tensors, metadata: header.__metadata__ ?? {}, order };
}

/** The converted pack's safetensors files (from the cache) against `m3 convert`'s (at `pack`):
 *  the same tensor names, dtypes, shapes and bytes, and the same metadata, per file. */
export async function compareTensors({ cache, base, dtype, pack }) {
  const store = await caches.open(cache);
  const vbase = convertedBase(abs(base), dtype);
  const out = {};
  for (const name of ['model.safetensors', 'colbert_linear.safetensors', 'sparse_linear.safetensors']) {
    const hit = await store.match(vbase + name);
    if (!hit) { out[name] = { missing: true }; continue; }
    const ours = safetensors(await hit.arrayBuffer());
    const theirs = safetensors(await (await fetch(pack + name)).arrayBuffer());
    const differ = [];
    for (const k of new Set([...Object.keys(ours.tensors), ...Object.keys(theirs.tensors)])) {
      const a = ours.tensors[k], b = theirs.tensors[k];
      if (!a || !b) { differ.push(`${k}: only in ${a ? 'ours' : 'theirs'}`); continue; }
      if (a.dtype !== b.dtype || JSON.stringify(a.shape) !== JSON.stringify(b.shape)) { differ.push(`${k}: ${a.dtype}${JSON.stringify(a.shape)} vs ${b.dtype}${JSON.stringify(b.shape)}`); continue; }
      if (a.bytes.length !== b.bytes.length || a.bytes.some((x, i) => x !== b.bytes[i])) differ.push(`${k}: bytes differ`);
    }
    out[name] = { tensors: Object.keys(ours.tensors).length, differ, sameMetadata: JSON.stringify(ours.metadata, Object.keys(ours.metadata).sort()) === JSON.stringify(theirs.metadata, Object.keys(theirs.metadata).sort()),
      sameOrder: ours.order.join() === theirs.order.join() };
  }
  return out;
}

/** What cache `cache` holds for `base`: the converted pack of `dtype` (its m3-pack.json's text,
 *  and per pack file the entry's size and its record), BAAI's files under `base` itself (the f32
 *  bytes: there should be none), every key, and `isCached` with and without `dtype`. */
export async function cacheState({ cache, base, dtype }) {
  const store = await caches.open(cache);
  const vbase = convertedBase(abs(base), dtype);
  const manifest = await store.match(vbase + 'm3-pack.json');
  const files = {};
  for (const name of PACK_FILES) {
    const hit = await store.match(vbase + name);
    const rec = await store.match(metaKey(vbase + name));
    files[name] = { size: hit ? (await hit.blob()).size : null, record: rec ? await rec.json() : null };
  }
  const f32 = {};
  for (const name of SOURCES) f32[name] = !!(await store.match(abs(base) + name));
  return {
    manifest: manifest ? await manifest.text() : null,
    files,
    f32,
    keys: (await store.keys()).map(r => r.url),
    isCached: await isCached(base, { cache, dtype }),
    isCachedF32: await isCached(base, { cache }),
  };
}

/** Changes the cached converted `name` of `base` at byte `at` (one bit; its record is kept), as a
 *  disk fault or a partial write would. */
export async function damageCached({ cache, base, dtype, name, at }) {
  const store = await caches.open(cache);
  const url = convertedBase(abs(base), dtype) + name;
  const bytes = new Uint8Array(await (await store.match(url)).arrayBuffer());
  bytes[at] ^= 0x01;
  await store.put(url, new Response(bytes));
  return bytes.length;
}

/** One load, then (on success) the dense cosine of reference text 0 and dispose. `abortOn`:
 *  "file:phase" of the progress event at which the load is aborted. */
const firstItem = {};
export async function loadOnce({ base, picked, stamp, dtype, cache, worker = true, encoderFile, abortOn, reference = '/fixtures/tiny-m3-reference.json' }) {
  const ctl = new AbortController();
  const r = await loadWith(picked ? await baaiFiles(base, picked, stamp) : base, { dtype, cache, worker, encoderFile, signal: ctl.signal,
    onProgress: p => { if (abortOn === `${p.file}:${p.phase}` && p.loaded > 0) ctl.abort(); } });
  if (r.err) return { err: r.err, phases: r.phases, ms: r.ms };
  const item = firstItem[reference] ??= (await (await fetch(reference)).json()).items[0];
  const { dense } = await r.model.encode(item.text);
  const out = { dtype: r.model.dtype, phases: r.phases, ms: r.ms, dense0: cosine(dense, item.dense),
    progress: r.events.filter(e => e.phase === 'convert').map(e => [e.file, e.loaded, e.total, e.at]) };
  await r.model.dispose();
  return out;
}

export const clear = name => clearCache(name);

/** The keys of cache `cache` under the folder of packs converted from picked files (files.js: pickedBase). */
export async function pickedKeys(cache) {
  const store = await caches.open(cache);
  return (await store.keys()).map(r => r.url).filter(u => u.startsWith('https://bge-m3-web.invalid/picked/'));
}
