// The full-size benchmark's worker: the package's engine (as its own worker runs it) plus a
// GPU buffer meter. Loads through the Cache API: the checkpoint is streamed to disk and read back
// tensor by tensor from a disk-backed Blob.
import { meter } from '/tests/browser/gpu-meter.mjs';
import { Engine, wasmHeapBytes } from '/pkg/src/engine.js';

const mib = x => +(x / 2 ** 20).toFixed(1);
self.onmessage = async ({ data: { base, encoderFile, device, texts } }) => {
  try {
    const t0 = performance.now();
    let downloadedAt = null;
    const engine = await Engine.load(base, { device, encoderFile, cache: 'bge-m3-web-bench', onProgress: p => {
      if (p.phase === 'build' && downloadedAt === null) { downloadedAt = performance.now(); console.log(`files ready after ${((downloadedAt - t0) / 1000).toFixed(1)} s`); }
      if (p.phase === 'build') console.log(`built ${p.loaded}/${p.total}: wasm heap ${mib(wasmHeapBytes())} MiB, GPU buffers ${mib(meter.live)} MiB`);
    } });
    const t1 = performance.now();
    const afterLoad = { heap: wasmHeapBytes(), gpu: meter.live };
    const rows = [];
    console.log(`model built after ${((t1 - t0) / 1000).toFixed(1)} s; wasm heap ${mib(afterLoad.heap)} MiB, GPU buffers ${mib(afterLoad.gpu)} MiB`);
    for (const text of texts) {
      const a = performance.now();
      const [r] = await engine.encode([text], {});
      const b = performance.now();
      await engine.encode([text], {});
      const c = performance.now();
      console.log(`${r.inputIds.length} tokens: ${((b - a) / 1000).toFixed(1)} s, then ${((c - b) / 1000).toFixed(1)} s`);
      rows.push({ tokens: r.inputIds.length, encode_first_s: +((b - a) / 1000).toFixed(2), encode_s: +((c - b) / 1000).toFixed(2), dense0: r.dense[0] });
    }
    self.postMessage({ ...engine.info,
      download_s: +(((downloadedAt ?? t0) - t0) / 1000).toFixed(1), build_s: +((t1 - (downloadedAt ?? t0)) / 1000).toFixed(1),
      wasm_heap_after_load_mib: mib(afterLoad.heap), wasm_heap_peak_mib: mib(wasmHeapBytes()),
      gpu_live_after_load_mib: mib(afterLoad.gpu), gpu_peak_mib: mib(meter.peak), gpu_largest_buffer_mib: mib(meter.largest),
      gpu_buffers_created: meter.buffers, rows });
  } catch (e) {
    self.postMessage({ error: e.message });
  }
};
