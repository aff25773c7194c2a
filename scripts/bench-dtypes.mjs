// The per-dtype benchmark (issue 11): `node scripts/bench.mjs --dtypes f32,f16,int8 [--models tiny,small,full]`.
// For each model it makes the packs with `m3 convert` (cached under $BENCH_CACHE/dtypes/packs/), then
// for each model x dtype x device runs the package in a fresh headless Chromium (an on-disk profile,
// so the Cache API is on disk as a user's): bench/dtype.html starts bench/dtype-worker.mjs, which
// calls `load(url, { dtype, device, cache, worker: false })` (the model on that worker's thread,
// where the GPU buffer meter and the wasm heap are read). Per run:
//   1. load once into an empty profile (download + build): bytes downloaded, bytes in the Cache API;
//   2. a new worker loads again (from the Cache API): load time, GPU buffers and wasm heap after load;
//   3. encode the 16- and 512-token texts of $BENCH_CACHE/texts.json (or those of --cells, e.g.
//      --cells 512,2048), all three outputs: a warm-up
//      run then three timed runs, their median (full size: one timed run; ᶜ: one cold run); GPU
//      buffer peak, wasm heap after encoding, dense vectors (compared with f32's in Node).
// Before each run the 1-minute load average is read; above --max-load it waits (--load-wait s at
// most) and the figure is printed beside the run's.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

export const DTYPE_LIST = ['f32', 'f16', 'int8'];
export const DEVICES = ['webgpu', 'cpu'];
const CACHE_NAME = 'bge-m3-bench-dtype';
const DEFAULT_CELLS = ['16', '512'];

// Targets of issue 11 (points 4 and 6), full-size model. GB = 1e9 bytes, GiB = 2^30.
export const TARGETS = {
  f16: { diskGB: 1.15, gpuGiB: 1.25 },
  int8: { diskGB: 0.65, gpuGiB: 0.75 },
  cpuHeapGiB: 1.5, // full model, int8, wasm CPU backend: heap after load and after encoding
  gpuF16Speedup: 1.7, // native f16 over f32 at 512 tokens on a real GPU
};

/** What runs for `model` x `dtype` on `device`: the cells, warm-up runs and timed runs per cell
 *  (tok/s is the median of the timed runs, `timed` of them: --timed; no warm-up: one cold run), or
 *  null (not run). The full-size model on SwiftShader is slow: 16 tokens on WebGPU; on the wasm
 *  CPU backend (SIMD128 matmuls: 12-14 s for 512 tokens on one core) a warm-up and one timed run
 *  of each cell (f32 is the row expected not to fit the heap bound, or not to load). */
function planOf(model, dtype, device, gpu, cellNames = DEFAULT_CELLS, timed = 3) {
  if (model !== 'full' || (gpu && device === 'webgpu')) return { cells: cellNames, warmup: 1, timed };
  if (device === 'webgpu') return { cells: ['16'], warmup: 1, timed: 1 };
  return { cells: cellNames, warmup: 1, timed: 1, cannot: dtype === 'f32' };
}
const WHY_NOT_RUN = 'not run';

const sleep = ms => new Promise(r => setTimeout(r, ms));
const sum = xs => xs.reduce((s, x) => s + x, 0);
const sizeOf = f => fs.statSync(f).size; // follows links

// ------------------------------------------------------------------------------------------
// Preparation: the f32 folder as the package reads it, and the packs

/** The f32 source as a base URL folder in BAAI's names. A folder with .pt heads is used as it is;
 *  one with safetensors heads (scripts/random_checkpoint.py --numpy) gets a folder of links that
 *  serves them under BAAI's .pt names (the loader tells the format from the bytes, not the name). */
function f32Source(name, dir, info, root) {
  const files = { 'config.json': 'config.json', 'tokenizer.json': 'tokenizer.json', [info.encoder]: info.encoder };
  for (const head of ['colbert_linear', 'sparse_linear']) {
    const src = [`${head}.pt`, `${head}.safetensors`].find(f => fs.existsSync(path.join(dir, f)));
    if (!src) throw new Error(`${dir}: no ${head}.pt or ${head}.safetensors`);
    files[`${head}.pt`] = src;
  }
  let served = dir;
  if (Object.entries(files).some(([as, src]) => as !== src)) {
    served = path.join(root, `${name}-f32`);
    fs.rmSync(served, { recursive: true, force: true });
    fs.mkdirSync(served, { recursive: true });
    for (const [as, src] of Object.entries(files)) fs.symlinkSync(path.join(dir, src), path.join(served, as));
  }
  return { dir: served, encoderFile: info.encoder, bytes: sum(Object.keys(files).map(f => sizeOf(path.join(served, f)))), converted: null };
}

/** `m3 convert` of `dir` to a pack, kept under `root` while the source (path, encoder size and
 *  mtime) is the same. Returns the pack folder, its bytes on disk and the conversion's seconds
 *  (null when it was already there). */
function packSource(name, dir, info, dtype, root, m3, h) {
  const out = path.join(root, `${name}-${dtype}`);
  const stamp = path.join(root, `${name}-${dtype}.source.json`);
  const enc = fs.statSync(path.join(dir, info.encoder));
  const want = JSON.stringify({ dir: path.resolve(dir), encoder: info.encoder, size: enc.size, mtimeMs: enc.mtimeMs });
  let converted = null;
  if (!(fs.existsSync(path.join(out, 'm3-pack.json')) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === want)) {
    if (!fs.existsSync(m3)) throw new Error(`${m3} is missing: build it with cargo build --release --bin m3, or set $M3`);
    fs.rmSync(out, { recursive: true, force: true });
    fs.rmSync(stamp, { force: true });
    const t = Date.now();
    h.sh(m3, ['convert', '--model', dir, '--out', out, '--dtype', dtype], { stdio: ['ignore', 'ignore', 'inherit'] });
    converted = (Date.now() - t) / 1000;
    fs.writeFileSync(stamp, want);
  }
  const bytes = sum(fs.readdirSync(out).map(f => sizeOf(path.join(out, f))));
  return { dir: out, encoderFile: undefined, bytes, converted };
}

// ------------------------------------------------------------------------------------------
// One run: model x dtype x device in a fresh Chromium profile

async function waitForQuiet(a) {
  const t0 = Date.now();
  let load = os.loadavg()[0];
  while (load > a.maxLoad && (Date.now() - t0) / 1000 < a.loadWait) {
    await sleep(15_000);
    load = os.loadavg()[0];
  }
  return { load: +load.toFixed(2), waitedS: Math.round((Date.now() - t0) / 1000) };
}

function withTimeout(promise, s) {
  let timer;
  return Promise.race([promise, new Promise(resolve => { timer = setTimeout(() => resolve({ error: { message: `timeout > ${s} s`, kind: 'timeout' } }), s * 1000); })])
    .finally(() => clearTimeout(timer));
}

async function runOne({ model, dtype, device, src, plan, cells, base, a, h }) {
  const label = `${model} ${dtype} ${device}`;
  const quiet = await waitForQuiet(a);
  h.log(`${label}: 1-min load ${quiet.load}${quiet.waitedS ? ` after waiting ${quiet.waitedS} s` : ''}`);
  const res = { loadavgStart: quiet.load, waitedS: quiet.waitedS, cells: {} };
  const { chromium } = await import('playwright-core');
  const { scratch, ...options } = h.chromiumOptions(a.gpu);
  const context = await chromium.launchPersistentContext(path.join(scratch, 'profile'), options);
  let crashed = false;
  try {
    const page = await context.newPage();
    page.on('crash', () => { crashed = true; });
    page.on('pageerror', e => h.log(`[${label} page error]`, e.message));
    page.on('console', m => { if (m.type() === 'error') h.log(`[${label} page]`, m.text().slice(0, 300)); });
    await page.goto(`${base}/bench/dtype.html`);
    await page.waitForFunction(() => window.dtypeBench);
    const call = async (op, args, s) => {
      const r = await withTimeout(page.evaluate(([op, args]) => window.dtypeBench.call(op, args), [op, args]).catch(e => ({ error: { message: e.message.split('\n')[0] } })), s);
      if (crashed) return { error: { message: 'the tab crashed (out of memory?)', kind: 'tab-crash' } };
      return r;
    };
    const loadArgs = { base: `/d/${model}-${dtype}/`, dtype, device, cache: CACHE_NAME, encoderFile: src.encoderFile };
    // 1. Into an empty profile: download + build.
    await page.evaluate(() => window.dtypeBench.start());
    h.log(`${label}: load (download)`);
    const first = await call('load', loadArgs, a.loadTimeout);
    if (first.error) {
      res.error = first.error;
      h.log(`${label}: load failed: [${first.error.kind ?? first.error.name}] ${first.error.message}`);
      return res;
    }
    res.download = first.result;
    h.log(`${label}: loaded in ${first.result.loadS.toFixed(1)} s (${(first.result.downloaded / 1e6).toFixed(1)} MB downloaded)`);
    // 2. A new worker (new wasm instance, device and meter): from the Cache API.
    await page.evaluate(() => window.dtypeBench.start());
    const second = await call('load', loadArgs, a.loadTimeout);
    if (second.error) { res.error = second.error; return res; }
    res.load = second.result;
    h.log(`${label}: from the cache in ${second.result.loadS.toFixed(1)} s; heap ${(second.result.heap / 2 ** 20).toFixed(0)} MiB, GPU ${(second.result.gpuLive / 2 ** 20).toFixed(0)} MiB`);
    // 3. The cells.
    for (const c of cells) {
      if (!plan.cells.includes(c.name)) continue;
      const runs = plan.warmup + plan.timed;
      const r = await call('encode', { text: c.texts[0], runs }, a.cellTimeout * runs);
      if (r.error) {
        res.cells[c.name] = { error: r.error };
        h.log(`${label} ${c.name}: [${r.error.kind ?? r.error.name}] ${r.error.message}`);
        break;
      }
      res.cells[c.name] = { ...r.result, wantTokens: c.lengths[0], warmup: plan.warmup, cold: plan.warmup === 0 };
      h.log(`${label} ${c.name}: ${r.result.times.map(t => t.toFixed(2)).join(' s, ')} s`);
    }
    await call('dispose', {}, 60);
  } finally {
    res.loadavgEnd = +os.loadavg()[0].toFixed(2);
    await context.close().catch(() => {});
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return res;
}

function cosine(a, b) {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return d / Math.sqrt(na * nb);
}

/** Per run, the smallest dense cosine over its cells against f32's vectors of the same cell:
 *  on the same device, else f32 on the other device (`other`: true). Dense vectors are then dropped. */
function compare(models) {
  for (const m of models) {
    for (const device of DEVICES) {
      for (const dtype of DTYPE_LIST) {
        const r = m.runs[device]?.[dtype];
        if (!r?.cells || dtype === 'f32') continue;
        let worst = null, other = false;
        for (const [cell, c] of Object.entries(r.cells)) {
          if (!c.dense) continue;
          let ref = m.runs[device]?.f32?.cells?.[cell]?.dense, cross = false;
          if (!ref) { ref = m.runs[DEVICES.find(d => d !== device)]?.f32?.cells?.[cell]?.dense; cross = true; }
          if (!ref) continue;
          const cos = cosine(c.dense, ref);
          if (worst === null || cos < worst) worst = cos;
          other ||= cross;
        }
        if (worst !== null) r.cosine = { min: worst, other };
      }
    }
    for (const device of DEVICES) for (const dtype of DTYPE_LIST) for (const c of Object.values(m.runs[device]?.[dtype]?.cells ?? {})) delete c.dense;
  }
}

// ------------------------------------------------------------------------------------------
// Report

const MiB = x => x / 2 ** 20;
const n0 = x => x == null || !isFinite(x) ? '–' : x >= 100 ? Math.round(x).toLocaleString('en-US') : x >= 10 ? x.toFixed(0) : x.toFixed(1);
const err = e => `[${e.kind ?? e.name ?? 'error'}] ${String(e.message).slice(0, 140)}`;

/** GPU buffer figures of a run: after load, and the peak over load and encoding. */
function gpuOf(r) {
  if (!r?.load) return null;
  const peak = Math.max(r.load.gpuPeak, ...Object.values(r.cells).map(c => c.gpuPeak ?? 0));
  return { after: r.load.gpuLive, peak };
}
/** wasm heap after load and after the last encode. */
function heapOf(r) {
  if (!r?.load) return null;
  const cells = Object.values(r.cells).filter(c => c.heap != null);
  return { after: r.load.heap, encoded: cells.length ? cells[cells.length - 1].heap : null };
}
function tps(r, cell) {
  const c = r?.cells?.[cell];
  if (!c) return null;
  if (c.error) return { error: c.error };
  // The median of the timed runs (older results: the last run after one warm-up).
  const timed = c.times.slice(c.warmup ?? (c.cold ? 0 : 1)).sort((x, y) => x - y);
  return { v: c.tokens / timed[(timed.length - 1) >> 1], cold: c.cold, tokensOk: c.tokens === c.wantTokens };
}

function runCells(r, cells, device, m, dtype) {
  if (r === undefined) return { tok: planOf(m.name, dtype, device) ? 'not run' : WHY_NOT_RUN, heap: '–', load: '–' };
  if (r.error && !r.load) return { tok: `${r.cannot ? 'cannot load' : 'load failed'}: ${err(r.error)}`, heap: '–', load: '–' };
  const tok = cells.map(c => { const t = tps(r, c); return !t ? '–' : t.error ? err(t.error) : n0(t.v) + (t.cold ? 'ᶜ' : '') + (t.tokensOk ? '' : ' (token count differs!)'); }).join(' / ');
  const hp = heapOf(r);
  return { tok, heap: `${n0(MiB(hp.after))} / ${n0(MiB(hp.encoded))}`, load: `${r.download.loadS.toFixed(1)} / ${r.load.loadS.toFixed(1)}` };
}

export function renderDtypes(report) {
  const md = [];
  const mi = report.machine;
  md.push(`Command: \`${report.command}\` (${report.minutes} min)`, '');
  md.push(`Machine: ${mi.cpu}, ${mi.cores} cores, ${mi.memGiB} GiB; ${mi.chromium ?? 'no chromium'}; node ${mi.node}. WebGPU adapter: ${report.adapters.join('; ') || '–'}. `
    + `1-minute load average at the start of each run in the last column (the machine is shared; runs started above ${report.maxLoad} ran under contention, marked ⚠).`, '');
  md.push('Models (random weights, BGE-M3 layout): ' + report.models.map(m => `${m.name} = ${m.info.layers} layers × ${m.info.hidden} wide, FFN ${m.info.ffn} (${m.source})`).join('; '), '');
  const cellNames = report.cells ?? DEFAULT_CELLS;
  md.push(`| model | dtype | files on disk MB | downloaded / in the Cache API MB | WebGPU load s (download + build / from cache) | GPU buffers MiB (after load / peak) | WebGPU tok/s (${cellNames.join(' / ')} tok) | wasm heap MiB, WebGPU (after load / after encode) | CPU load s (download + build / from cache) | wasm CPU tok/s (${cellNames.join(' / ')} tok) | wasm heap MiB, CPU (after load / after encode) | dense cosine vs f32 (WebGPU / CPU) | load avg (WebGPU / CPU) |`);
  md.push('|---|---|---:|---|---|---|---|---|---|---|---|---|---|');
  for (const m of report.models) {
    for (const dtype of DTYPE_LIST) {
      const src = m.sources[dtype];
      if (!src) continue;
      const g = m.runs.webgpu?.[dtype], c = m.runs.cpu?.[dtype];
      const G = runCells(g, cellNames, 'webgpu', m, dtype), C = runCells(c, cellNames, 'cpu', m, dtype);
      const bytes = g?.download ?? c?.download;
      const dl = bytes ? `${n0(bytes.downloaded / 1e6)} / ${n0(bytes.cache.bytes / 1e6)}` : '–';
      const gpu = gpuOf(g);
      const cos = [g, c].map(r => r?.cosine ? r.cosine.min.toFixed(6) + (r.cosine.other ? 'ˣ' : '') : dtype === 'f32' ? '(ref.)' : '–').join(' / ');
      const la = [g, c].map(r => r ? `${r.loadavgStart}${r.loadavgStart > report.maxLoad ? '⚠' : ''}` : '–').join(' / ');
      md.push(`| ${m.name} | ${dtype} | ${n0(src.bytes / 1e6)}${src.converted ? ` (m3 convert ${src.converted.toFixed(0)} s)` : ''} | ${dl} | ${G.load} | ${gpu ? `${n0(MiB(gpu.after))} / ${n0(MiB(gpu.peak))}` : '–'} | ${G.tok} | ${G.heap} | ${C.load} | ${C.tok} | ${C.heap} | ${cos} | ${la} |`);
    }
  }
  md.push('', 'ᶜ one cold run (first-call shader compilation included); otherwise a warm-up run, then the timed runs (their median; runs per cell in the plan of scripts/bench-dtypes.mjs). ˣ against f32 on the other device (f32 did not run here). '
    + 'Files on disk: for f32 the five files the package downloads (BAAI layout), for a pack its six files. Downloaded: bytes of the first load into an empty profile; the Cache API figure counts every entry after it, the package\'s small metadata records included. '
    + 'GPU buffers: bytes of WebGPU buffers created and not destroyed (tests/browser/gpu-meter.mjs), after the load from cache and the peak over that load and the encodes. wasm heap: the wasm memory of the worker the model runs in (it only grows). tok/s: all three outputs (dense, sparse, ColBERT), one text at a time.');
  md.push('', '**Targets** (issue 11):', '', ...targets(report).map(t => `- ${t}`));
  return md.join('\n');
}

function targets(report) {
  const out = [];
  const full = report.models.find(m => m.name === 'full');
  const yes = ok => ok ? '**met**' : '**not met**';
  for (const dtype of ['f16', 'int8']) {
    const t = TARGETS[dtype];
    if (!full?.sources[dtype]) { out.push(`full ${dtype}: not measured (no full model in this run)`); continue; }
    const gb = full.sources[dtype].bytes / 1e9;
    const g = gpuOf(full.runs.webgpu?.[dtype]);
    out.push(`full ${dtype} on disk ≤ ${t.diskGB} GB: ${gb.toFixed(3)} GB, ${yes(gb <= t.diskGB)}`);
    out.push(`full ${dtype} GPU buffers ≤ ${t.gpuGiB} GiB: ${g ? `${(g.after / 2 ** 30).toFixed(3)} GiB after load, ${(g.peak / 2 ** 30).toFixed(3)} GiB peak, ${yes(g.peak <= t.gpuGiB * 2 ** 30)}` : 'not measured'}`);
  }
  for (const m of report.models) {
    const f32 = tps(m.runs.webgpu?.f32, '512');
    if (!f32?.v) continue;
    const parts = ['f16', 'int8'].map(d => { const x = tps(m.runs.webgpu?.[d], '512'); return x?.v ? `${d} ${(x.v / f32.v).toFixed(2)}× f32 ${yes(x.v >= f32.v)}` : `${d} not measured`; });
    out.push(`${m.name}, 512 tokens on WebGPU (${report.adapters.join('; ')}), f16 and int8 not slower than f32: ${parts.join('; ')}`);
  }
  // Not an issue 11 target, the same question where "auto" runs on a software adapter.
  for (const m of report.models) {
    const f32 = tps(m.runs.cpu?.f32, '512');
    if (!f32?.v) continue;
    const parts = ['f16', 'int8'].map(d => { const x = tps(m.runs.cpu?.[d], '512'); return x?.v ? `${d} ${(x.v / f32.v).toFixed(2)}×` : `${d} not measured`; });
    out.push(`(${m.name}, 512 tokens on the wasm CPU backend, against f32: ${parts.join('; ')})`);
  }
  if (full) {
    const c = full.runs.cpu?.int8, hp = heapOf(c);
    out.push(`full int8 on the wasm CPU backend, heap < ${TARGETS.cpuHeapGiB} GiB after load and encode: ${hp ? `${(hp.after / 2 ** 30).toFixed(3)} / ${hp.encoded == null ? '–' : (hp.encoded / 2 ** 30).toFixed(3)} GiB, ${yes(hp.encoded != null && Math.max(hp.after, hp.encoded) < TARGETS.cpuHeapGiB * 2 ** 30)}` : c?.error ? `failed: ${err(c.error)}` : 'not measured'}`);
    const f = full.runs.cpu?.f32, fh = heapOf(f);
    const over = fh && Math.max(fh.after, fh.encoded ?? 0) >= TARGETS.cpuHeapGiB * 2 ** 30;
    out.push(`full f32 on the wasm CPU backend, the same heap bound (expected not to be met): ${f?.error && !f.load ? `cannot load: ${err(f.error)}`
      : fh ? `it loads, heap ${(fh.after / 2 ** 30).toFixed(3)} GiB after load, ${fh.encoded == null ? '–' : (fh.encoded / 2 ** 30).toFixed(3)} GiB after encode: ${over ? `over ${TARGETS.cpuHeapGiB} GiB` : `under ${TARGETS.cpuHeapGiB} GiB`}${f.error ? `; then ${err(f.error)}` : ''}` : 'not measured'}`);
  }
  out.push(report.gpu
    ? `native f16 ≥ ${TARGETS.gpuF16Speedup}× f32 at 512 tokens on a real GPU: see the WebGPU tok/s above (this run used --gpu)`
    : `native f16 ≥ ${TARGETS.gpuF16Speedup}× f32 at 512 tokens on a real GPU: not measured (SwiftShader only in this run)`);
  return out;
}

// ------------------------------------------------------------------------------------------

/** `a`: bench.mjs's options (dtypes, models, gpu, out, maxLoad, loadWait, cellTimeout, loadTimeout);
 *  `h`: its helpers (cache, m3, root, log, sh, modelDir, modelInfo, textsFile, cellsOf, serve,
 *  chromiumOptions, machine). Writes results-dtypes.json / .md under a.out and prints the table. */
export async function runDtypes(a, h) {
  const bad = a.dtypes.filter(d => !DTYPE_LIST.includes(d));
  if (bad.length) throw new Error(`--dtypes: unknown ${bad.join(', ')} (f32, f16, int8)`);
  const devices = a.devices ?? DEVICES;
  if (devices.some(d => !DEVICES.includes(d))) throw new Error(`--devices: ${devices.join(',')} (webgpu, cpu)`);
  if (!a.dtypes.includes('f32')) h.log('no f32 in --dtypes: no dense cosine against f32');
  if (!fs.existsSync(path.join(h.root, 'pkg/wasm/bge_m3_web_bg.wasm'))) throw new Error('pkg/wasm is missing: bash scripts/build-wasm.sh');
  const t0 = Date.now();
  const texts = JSON.parse(fs.readFileSync(h.textsFile(), 'utf8'));
  // --cells (single texts only: 16, 512, 2048, 8192) replaces the default 16 and 512 tokens.
  const cellNames = a.cellsGiven ? a.cells.filter(c => /^\d+$/.test(c)) : DEFAULT_CELLS;
  if (!cellNames.length) throw new Error(`--cells ${a.cells.join(',')}: the per-dtype table takes single texts (16, 512, 2048, 8192)`);
  const cells = h.cellsOf(texts, cellNames);
  const root = path.join(h.cache, 'dtypes');
  fs.mkdirSync(path.join(root, 'packs'), { recursive: true });
  const models = a.models.map(name => {
    const dir = h.modelDir(name);
    const info = h.modelInfo(dir);
    const sources = {};
    for (const dtype of a.dtypes) {
      sources[dtype] = dtype === 'f32' ? f32Source(name, dir, info, root) : packSource(name, dir, info, dtype, path.join(root, 'packs'), h.m3, h);
    }
    return { name, dir, info, source: dir, sources, runs: {} };
  });
  const mounts = {};
  for (const m of models) for (const [dtype, s] of Object.entries(m.sources)) mounts[`/d/${m.name}-${dtype}/`] = s.dir;
  const { server, base } = await h.serve(mounts);
  const report = { machine: h.machine(), command: `node scripts/bench.mjs ${process.argv.slice(2).join(' ')}`.trim(), gpu: !!a.gpu,
    maxLoad: a.maxLoad, started: new Date().toISOString(), cells: cellNames, models };
  const save = () => {
    report.minutes = +((Date.now() - t0) / 60000).toFixed(1);
    report.adapters = [...new Set(models.flatMap(m => Object.values(m.runs.webgpu ?? {}).map(r => r.load?.adapter)).filter(Boolean))];
    fs.writeFileSync(path.join(a.out, 'results-dtypes.json'), JSON.stringify(report, null, 1));
  };
  try {
    for (const m of models) {
      for (const device of devices) {
        m.runs[device] = {};
        // f32 last on the CPU: at full size it is the attempt expected to fail.
        const order = device === 'cpu' ? [...a.dtypes.filter(d => d !== 'f32'), ...a.dtypes.filter(d => d === 'f32')] : a.dtypes;
        for (const dtype of order) {
          const plan = planOf(m.name, dtype, device, a.gpu, cellNames, a.timed ?? 3);
          if (!plan) continue;
          const r = await runOne({ model: m.name, dtype, device, src: m.sources[dtype], plan, cells, base, a, h });
          if (plan.cannot) r.cannot = true;
          m.runs[device][dtype] = r;
          save();
        }
      }
    }
  } finally {
    server.close();
  }
  compare(models);
  report.loadavgEnd = os.loadavg().map(x => +x.toFixed(2));
  save();
  const text = renderDtypes(report);
  fs.writeFileSync(path.join(a.out, 'results-dtypes.md'), text + '\n');
  console.log(text);
  h.log(`wrote ${path.join(a.out, 'results-dtypes.md')} and results-dtypes.json`);
}
