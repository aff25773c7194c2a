// The benchmark page's side (bench/bench.html), driven by scripts/bench.mjs. One page holds one
// library and one model: `load()` once, then `run()` per cell. Both libraries run on the page's
// main thread, on the same WebGPU adapter, with the same texts.
//   ours:   bge-m3-web's raw wasm API (pkg/wasm), M3.load + encode (dense only, or all three)
//   theirs: transformers.js (@huggingface/transformers) on onnxruntime-web's WebGPU backend,
//           AutoTokenizer + AutoModel on an ONNX export of the same checkpoint; dense = the
//           L2-normalised first row (<s>) of last_hidden_state, which is BGE-M3's dense vector.
import { meter } from '/tests/browser/gpu-meter.mjs';

// Every wasm memory the page creates or instantiates (ours, onnxruntime-web's), for the heap
// figures. Wasm memories never shrink, so their current size is their peak.
const memories = new Set();
{
  const W = WebAssembly;
  const keep = exports => { for (const v of Object.values(exports ?? {})) if (v instanceof W.Memory) memories.add(v); };
  const Memory = W.Memory;
  const Wrapped = function (desc) { const m = new Memory(desc); memories.add(m); return m; };
  Wrapped.prototype = Memory.prototype;
  W.Memory = Wrapped;
  const Instance = W.Instance;
  const WrappedInstance = function (mod, imports) { const i = new Instance(mod, imports); keep(i.exports); return i; };
  WrappedInstance.prototype = Instance.prototype;
  W.Instance = WrappedInstance;
  for (const name of ['instantiate', 'instantiateStreaming']) {
    const f = W[name];
    W[name] = async function (...args) {
      const r = await f.apply(this, args);
      keep((r.instance ?? r).exports);
      return r;
    };
  }
}
const heapBytes = () => [...memories].reduce((s, m) => s + m.buffer.byteLength, 0);
const mib = x => +(x / 2 ** 20).toFixed(1);

let lib = null;

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** `which`: 'ours' or 'theirs'. ours: { base, encoder, device }; theirs: { id, device }. */
export async function load(which, opts) {
  const t0 = performance.now();
  if (which === 'ours') {
    const { default: init, M3 } = await import('/pkg/wasm/bge_m3_web.js');
    await init();
    const get = f => bytes(opts.base + f);
    const files = { config: await get('config.json'), tokenizer: await get('tokenizer.json'), encoder: await get(opts.encoder),
      colbert: await get('colbert_linear.pt'), sparse: await get('sparse_linear.pt') };
    const model = await M3.load(files, opts.device ?? 'webgpu');
    lib = {
      which, model, adapter: `${await adapterInfo()} (${model.adapter})`, backend: `bge-m3-web ${model.backend}`,
      async encode(texts, batch, all) {
        const out = await model.encode(texts, { dense: true, sparse: all, colbert: all, maxLength: 8192, batchSize: batch });
        return out.map(r => ({ ids: r.inputIds, dense: r.dense }));
      },
    };
  } else {
    const T = await import('/bench/node_modules/@huggingface/transformers/dist/transformers.js');
    const { env, AutoTokenizer, AutoModel } = T;
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = opts.modelPath ?? '/bench-models/';
    env.useBrowserCache = false;
    env.useWasmCache = false;
    const ort = '/bench/node_modules/onnxruntime-web/dist/';
    env.backends.onnx.wasm.wasmPaths = { mjs: ort + 'ort-wasm-simd-threaded.asyncify.mjs', wasm: ort + 'ort-wasm-simd-threaded.asyncify.wasm' };
    const tokenizer = await AutoTokenizer.from_pretrained(opts.id);
    const model = await AutoModel.from_pretrained(opts.id, { device: opts.device ?? 'webgpu', dtype: 'fp32' });
    const adapter = await adapterInfo();
    lib = {
      which, tokenizer, model, adapter, backend: `transformers.js ${T.env.version} / onnxruntime-web ${env.backends.onnx.versions?.web ?? '?'} (${opts.device ?? 'webgpu'})`,
      async encode(texts, batch) {
        // The peer's natural call: tokenize with padding, one forward per batch, CLS rows.
        const out = [];
        for (let s = 0; s < texts.length; s += batch) {
          const inputs = tokenizer(texts.slice(s, s + batch), { padding: true, truncation: true, max_length: 8192 });
          const { last_hidden_state: h } = await model(inputs);
          const [B, L, H] = h.dims;
          const ids = inputs.input_ids.data, mask = inputs.attention_mask.data;
          for (let b = 0; b < B; b++) {
            let n = 0;
            for (let t = 0; t < L; t++) n += Number(mask[b * L + t]);
            const row = [];
            for (let t = 0; t < L; t++) if (Number(mask[b * L + t])) row.push(Number(ids[b * L + t]));
            const cls = h.data.slice(b * L * H, b * L * H + H);
            let norm = 0;
            for (const v of cls) norm += v * v;
            norm = Math.sqrt(norm) || 1;
            out.push({ ids: Uint32Array.from(row), dense: cls.map(v => v / norm), n });
          }
          h.dispose?.();
        }
        return out;
      },
    };
  }
  const loadS = (performance.now() - t0) / 1000;
  return { loadS, adapter: lib.adapter, backend: lib.backend, heapMiB: mib(heapBytes()), gpuLiveMiB: mib(meter.live), gpuPeakMiB: mib(meter.peak) };
}

async function adapterInfo() {
  try {
    const a = await navigator.gpu?.requestAdapter();
    const i = a?.info ?? {};
    return [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'unknown';
  } catch { return 'unknown'; }
}

/** Encodes `texts` once at batch size `batch` (`all`: ours computes sparse and ColBERT too).
 *  Returns seconds, the ids per text, dense vectors (when `withDense`), and memory figures:
 *  GPU buffer peak during this call, wasm heap after it. */
export async function run({ texts, batch, all = false, withDense = true }) {
  meter.peak = meter.live;
  const t = performance.now();
  const out = await lib.encode(texts, batch, all);
  const s = (performance.now() - t) / 1000;
  return {
    s, lengths: out.map(r => r.ids.length), ids: out.map(r => Array.from(r.ids)),
    dense: withDense ? out.map(r => Array.from(r.dense)) : null,
    gpuPeakMiB: mib(meter.peak), gpuLiveMiB: mib(meter.live), gpuLargestMiB: mib(meter.largest), heapMiB: mib(heapBytes()),
  };
}
