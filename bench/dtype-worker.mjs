// The per-dtype benchmark's worker (bench/dtype.html starts one per load; scripts/bench-dtypes.mjs
// drives it). It runs the package's public `load(url, { dtype, device, cache, worker: false })`:
// in this worker the model lives on this thread, as it does in the package's own worker, so the
// GPU buffer meter and the wasm heap seen here are the model's. Files stream into the Cache API
// and are read back tensor by tensor from disk-backed Blobs (FileReaderSync), as in the package.
import { meter } from '/tests/browser/gpu-meter.mjs'; // first: it wraps createBuffer before any device exists
import { load } from '/pkg/src/index.js';
import { wasmHeapBytes } from '/pkg/src/engine.js'; // the same module instance load() uses here

let model = null;

/** Bytes held by the Cache API store `name`: its entries' bodies (the package's metadata records
 *  included, a few hundred bytes each) and how many entries. */
async function cacheBytes(name) {
  const store = await caches.open(name);
  let bytes = 0, entries = 0;
  for (const req of await store.keys()) {
    const r = await store.match(req);
    bytes += (await r.blob()).size;
    entries++;
  }
  return { bytes, entries };
}

async function adapterName() {
  try {
    const a = await navigator.gpu?.requestAdapter();
    const i = a?.info ?? {};
    return [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'unknown';
  } catch { return 'unknown'; }
}

const ops = {
  /** Loads `base` (or `picked`, Files in BAAI's layout or a pack's); returns times (files ready = first "build" progress), the bytes each file came
   *  with per source ("download" or "cache"), the Cache API's bytes after, and memory after load. */
  async load({ base, picked, dtype, device, cache, encoderFile }) {
    const t0 = performance.now();
    let filesReady = null;
    const last = {}; // file -> its latest progress event
    model = await load(picked ?? base, { dtype, device, cache, encoderFile, worker: false, onProgress: p => {
      if (p.phase === 'build') filesReady ??= performance.now();
      else last[p.file] = p;
    } });
    const t1 = performance.now();
    const downloaded = Object.values(last).filter(p => p.phase === 'download').reduce((s, p) => s + p.loaded, 0);
    const fromCache = Object.values(last).filter(p => p.phase === 'cache').reduce((s, p) => s + p.loaded, 0);
    return {
      dtype: model.dtype, backend: model.backend, adapter: `${await adapterName()} (${model.adapter})`,
      loadS: (t1 - t0) / 1000, filesS: ((filesReady ?? t1) - t0) / 1000, buildS: (t1 - (filesReady ?? t1)) / 1000,
      downloaded, fromCache, files: Object.fromEntries(Object.entries(last).map(([f, p]) => [f, { phase: p.phase, bytes: p.loaded }])),
      cache: cache ? await cacheBytes(cache) : null,
      heap: wasmHeapBytes(), gpuLive: meter.live, gpuPeak: meter.peak, gpuLargest: meter.largest, gpuBuffers: meter.buffers,
    };
  },
  /** Encodes `text` (all three outputs, the defaults) `runs` times; returns each run's seconds,
   *  the token count, the last dense vector, the GPU peak during these runs and the heap after. */
  async encode({ text, runs }) {
    meter.peak = meter.live;
    const times = [];
    let r;
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      r = await model.encode(text);
      times.push((performance.now() - t) / 1000);
    }
    return { times, tokens: r.inputIds.length, windows: r.windows.length, dense: Array.from(r.dense),
      colbertRows: r.colbert.rows, sparseIds: r.sparse.ids.length,
      heap: wasmHeapBytes(), gpuPeak: meter.peak, gpuLive: meter.live };
  },
  async dispose() {
    await model?.dispose();
    model = null;
    return { heap: wasmHeapBytes(), gpuLive: meter.live };
  },
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    self.postMessage({ id, ok: true, result: await ops[op](args) });
  } catch (e) {
    self.postMessage({ id, ok: false, error: { name: e?.name, message: String(e?.message ?? e), kind: e?.kind } });
  }
};
