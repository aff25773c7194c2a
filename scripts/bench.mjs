// Side-by-side benchmark: bge-m3-web against transformers.js (onnxruntime-web, WebGPU) in one
// headless Chromium, and native `m3` (cpu, wgpu) against FlagEmbedding (PyTorch), on the same
// random-weight checkpoints and the same texts. Prints one markdown report.
//
//   node scripts/bench.mjs [--models tiny,small[,full]] [--skip-browser] [--skip-native]
//        [--cells 16,512,2048,mixed32,8192] [--plan MODEL:CELL,CELL...[:COLDCELL,...]] [--cell-timeout 300]
//        [--gpu] [--backends cpu,wgpu] [--flag cpu|cuda|none] [--out DIR]
//   node scripts/bench.mjs --report DIR/results.json     (re-renders the tables of a finished run)
//   node scripts/bench.mjs --dtypes f32,f16,int8 [--models tiny,small,full] [--devices webgpu,cpu] [--cells 16,512] [--max-load 1.5] [--load-wait 120]
//        [--timed 3] [--cell-timeout 300] [--load-timeout 900] [--gpu]   (the per-dtype table: scripts/bench-dtypes.mjs;
//        --report DIR/results-dtypes.json re-renders it)
//
// Prepares what is missing, under $BENCH_CACHE (default ~/.cache/bge-m3-bench):
//   texts.json         scripts/bench_texts.py: texts of exactly 16/512/2048/8192 tokens + 32 mixed
//   small-m3/          ../shared/fixtures/make_fixture.py: 6 layers, 384 wide, 12 heads, FFN 1536, matrices
//                      normal(0, 0.02) (HF-like: at 0.2 a 6-layer model is ill-conditioned, and int8 loses
//                      5% of dense cosine to that, not to the dtype)
//   full-m3/           scripts/random_checkpoint.py (24 x 1024), unless $M3_FULL_MODEL names a
//                      full-size model folder (config.json, ...) to use instead
//   onnx/<model>/      scripts/bench_export_onnx.py: the same checkpoint as a transformers.js folder
//   pydeps/            the `onnx` Python package, where the Python lacks it (pip --target)
// Python: $M3_PYTHON, else python3 (torch, transformers, FlagEmbedding). m3: $M3, else
// $CARGO_TARGET_DIR/release/m3 (CARGO_TARGET_DIR default ~/.cache/bge-m3-target). The wasm build: pkg/wasm
// (bash scripts/build-wasm.sh). Chromium: $CHROMIUM, else /usr/bin/chromium; WebGPU runs on
// SwiftShader unless --gpu (then on whatever adapter Chromium picks). --backends names m3's devices
// (`m3 --device cpu|wgpu`); bench_native.py runs `m3 encode --truncate` (FlagEmbedding's truncation).
// --plan limits the browser cells of a model (SwiftShader is slow); the default plan is PLAN.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = path.resolve(root, '../shared/fixtures');
const cache = process.env.BENCH_CACHE ?? path.join(os.homedir(), '.cache/bge-m3-bench');
const python = process.env.M3_PYTHON || 'python3';
const m3 = process.env.M3 || path.join(process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/bge-m3-target'), 'release/m3');
const ALL_CELLS = ['16', '512', '2048', 'mixed32', '8192'];

// Browser cells per model on SwiftShader (~1-2 GFLOP/s): what finishes in minutes. A cell left
// out is reported as skipped. Cells in `cold` get one run per side (ours: dense, then all three
// outputs) instead of warm-up + timed runs; at these sizes shader compilation is a small part.
const PLAN = {
  tiny: { cells: ['16', '512', '2048', 'mixed32', '8192'], cold: ['2048', 'mixed32', '8192'] },
  small: { cells: ['16', '512', '2048', 'mixed32'], cold: ['2048', 'mixed32'] },
  full: { cells: ['16'], cold: ['16'] },
};
const PLAN_GPU = Object.fromEntries(['tiny', 'small', 'full'].map(m => [m, { cells: ALL_CELLS, cold: [] }]));
// Native cells left out here (no --gpu): the full-size model on a few CPU cores takes minutes per run.
const NATIVE_SKIP = ['full:2048', 'full:mixed32', 'full:8192'];
const WHY_SKIPPED = 'not run on SwiftShader: estimated over 5 min per run';

/** A page error as one short line. */
function shortError(msg) {
  return msg.split('\n')[0].replace(/^page\.evaluate: /, '').replace(/^Error: /, '').replace('failed to call OrtRun(). ERROR_CODE: 1, ERROR_MESSAGE: ', 'OrtRun: ').slice(0, 160);
}

function parseArgs(argv) {
  const a = { models: ['tiny', 'small'], cells: ALL_CELLS, plan: {}, cellTimeout: 300, backends: 'cpu,wgpu', flag: 'cpu', out: cache,
    maxLoad: 1.5, loadWait: 120, loadTimeout: 900 };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i], v = () => argv[++i];
    if (f === '--models') a.models = v().split(',').filter(Boolean);
    else if (f === '--cells') { a.cells = v().split(',').filter(Boolean); a.cellsGiven = true; }
    else if (f === '--plan') { const [m, cs, cold = ''] = v().split(':'); a.plan[m] = { cells: cs.split(',').filter(Boolean), cold: cold.split(',').filter(Boolean) }; }
    else if (f === '--cell-timeout') a.cellTimeout = Number(v());
    else if (f === '--skip-browser') a.skipBrowser = true;
    else if (f === '--skip-native') a.skipNative = true;
    else if (f === '--gpu') a.gpu = true;
    else if (f === '--backends') a.backends = v();
    else if (f === '--flag') a.flag = v();
    else if (f === '--out') a.out = v();
    else if (f === '--report') a.report = v();
    else if (f === '--dtypes') a.dtypes = v().split(',').filter(Boolean);
    else if (f === '--devices') a.devices = v().split(',').filter(Boolean);
    else if (f === '--max-load') a.maxLoad = Number(v());
    else if (f === '--load-wait') a.loadWait = Number(v());
    else if (f === '--load-timeout') a.loadTimeout = Number(v());
    else if (f === '--timed') { a.timed = Number(v()); if (!(Number.isInteger(a.timed) && a.timed >= 1)) throw new Error('--timed: a whole number >= 1'); }
    else if (f === '--help' || f === '-h') { console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\nimport ')[0]); process.exit(0); }
    else throw new Error(`unknown option ${f}`);
  }
  return a;
}

const log = (...x) => console.error('bench:', ...x);

function sh(cmd, args, opts = {}) {
  log('$', cmd, args.join(' '));
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}`);
}

// ------------------------------------------------------------------------------------------
// Preparation

function modelDir(name) {
  if (name === 'tiny') return path.join(fixtures, 'tiny-m3');
  if (name === 'small') {
    const dir = path.join(cache, 'small-m3');
    if (hasHeads(dir)) return dir;
    if (!hasTorch()) {
      // Without torch: the same shape from scripts/random_checkpoint.py (numpy; safetensors heads,
      // HF-like std 0.02; no FlagEmbedding reference is made).
      sh(python, [path.join(root, 'scripts/random_checkpoint.py'), dir, '--tokenizer', path.join(fixtures, 'tiny-m3/tokenizer.json'),
        '--hidden', '384', '--layers', '6', '--heads', '12', '--inter', '1536', '--std', '0.02', '--numpy']);
    } else {
      sh(python, [path.join(fixtures, 'make_fixture.py'), '--out', dir, '--tokenizer', path.join(fixtures, 'tiny-m3/tokenizer.json'),
        '--texts', path.join(fixtures, 'texts-shared.json'), '--reference', path.join(cache, 'small-m3-reference.json'),
        '--hidden', '384', '--layers', '6', '--heads', '12', '--inter', '1536', '--std', '0.02']);
    }
    return dir;
  }
  if (name === 'full') {
    const given = process.env.M3_FULL_MODEL;
    if (given) {
      if (!fs.existsSync(path.join(given, 'config.json'))) throw new Error(`M3_FULL_MODEL=${given}: no config.json there`);
      return path.resolve(given);
    }
    const dir = path.join(cache, 'full-m3');
    if (!hasHeads(dir)) {
      sh(python, [path.join(root, 'scripts/random_checkpoint.py'), dir, '--tokenizer', path.join(fixtures, 'tiny-m3/tokenizer.json'),
        '--std', '0.02', ...(hasTorch() ? [] : ['--numpy'])]); // HF-like: at 0.2 a 24-layer model is ill-conditioned
    }
    return dir;
  }
  if (fs.existsSync(path.join(name, 'config.json'))) return path.resolve(name);
  throw new Error(`unknown model ${name} (tiny, small, full or a checkpoint folder)`);
}

/** Whether `dir` holds a finished checkpoint (config.json and the heads come after the encoder):
 *  BAAI's .pt heads, or safetensors heads (scripts/random_checkpoint.py --numpy). */
function hasHeads(dir) {
  return fs.existsSync(path.join(dir, 'config.json')) && ['colbert_linear.pt', 'colbert_linear.safetensors'].some(f => fs.existsSync(path.join(dir, f)));
}

let torchFound;
const hasTorch = () => (torchFound ??= spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);

function modelInfo(dir) {
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const encoder = fs.existsSync(path.join(dir, 'model.safetensors')) ? 'model.safetensors' : 'pytorch_model.bin';
  const bytes = fs.statSync(path.join(dir, encoder)).size;
  return { layers: c.num_hidden_layers, hidden: c.hidden_size, heads: c.num_attention_heads, ffn: c.intermediate_size, encoder, bytes };
}

function pythonEnv() {
  const pydeps = path.join(cache, 'pydeps');
  return { ...process.env, PYTHONPATH: [pydeps, process.env.PYTHONPATH].filter(Boolean).join(':') };
}

function onnxDir(name, dir) {
  const out = path.join(cache, 'onnx', name);
  if (fs.existsSync(path.join(out, 'onnx/model.onnx')) && fs.existsSync(path.join(out, 'config.json'))) return out;
  const env = pythonEnv();
  if (spawnSync(python, ['-c', 'import onnx'], { env }).status !== 0) {
    sh(python, ['-m', 'pip', 'install', '-q', '--no-deps', '--target', path.join(cache, 'pydeps'), 'onnx==1.23.2', 'ml_dtypes==0.6.0']);
  }
  sh(python, [path.join(root, 'scripts/bench_export_onnx.py'), '--model', dir, '--out', out], { env });
  return out;
}

function textsFile() {
  const f = path.join(cache, 'texts.json');
  if (fs.existsSync(f)) return f;
  fs.mkdirSync(cache, { recursive: true });
  const env = pythonEnv();
  if (spawnSync(python, ['-c', 'import tokenizers'], { env, stdio: 'ignore' }).status !== 0) {
    sh(python, ['-m', 'pip', 'install', '-q', '--no-deps', '--target', path.join(cache, 'pydeps'), 'tokenizers==0.22.1']);
  }
  sh(python, [path.join(root, 'scripts/bench_texts.py'), '--tokenizer', path.join(fixtures, 'tiny-m3/tokenizer.json'), '--out', f], { env });
  return f;
}

// ------------------------------------------------------------------------------------------
// Browser

const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html' };

/** Static files: the repo at /, model folders at /m/<name>/ and ONNX folders at /bench-models/<name>/. */
function serve(mounts) {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    let file = null;
    for (const [prefix, dir] of Object.entries(mounts)) {
      if (url.startsWith(prefix)) { file = path.join(dir, url.slice(prefix.length)); if (!file.startsWith(dir)) file = null; break; }
    }
    if (file === null) { file = path.join(root, url); if (!file.startsWith(root)) { res.writeHead(403).end(); return; } }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) { if (process.env.BENCH_VERBOSE) log('404', url); res.writeHead(404).end('not found'); return; }
      res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'content-length': st.size });
      if (st.size === 0) res.end(); else fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${server.address().port}` })));
}

/** Chromium's launch options: WebGPU on SwiftShader, or with `gpu` on whatever adapter it picks;
 *  a scratch folder for its config and cache. Also used by scripts/bench-dtypes.mjs. */
function chromiumOptions(gpu) {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'm3-bench-chromium-'));
  const adapter = gpu ? ['--enable-features=Vulkan,WebGPU', '--ignore-gpu-blocklist']
    : ['--enable-features=Vulkan,WebGPU', '--use-webgpu-adapter=swiftshader', '--use-vulkan=swiftshader', '--disable-vulkan-surface', '--use-angle=swiftshader'];
  return {
    scratch,
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    env: { ...process.env, XDG_CONFIG_HOME: scratch, XDG_CACHE_HOME: scratch, TMPDIR: scratch },
    args: ['--no-sandbox', '--disable-gpu-sandbox', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu', ...adapter],
  };
}

async function launch(gpu) {
  const { chromium } = await import('playwright-core');
  const { scratch, ...options } = chromiumOptions(gpu);
  return chromium.launch(options);
}

function withTimeout(promise, s, what) {
  let timer;
  return Promise.race([promise, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timeout > ${s} s`)), s * 1000); })])
    .finally(() => clearTimeout(timer));
}

/** One library on one model: a fresh browser, load, then the planned cells in order. */
async function browserSide(which, name, info, cells, plan, a, base) {
  const res = { load: null, cells: {} };
  const browser = await launch(a.gpu);
  try {
    const page = await browser.newPage();
    page.on('pageerror', e => log(`[${which} page error]`, e.message));
    page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') log(`[${which} page]`, m.text().slice(0, 300)); });
    let crashed = false;
    page.on('crash', () => { crashed = true; });
    await page.goto(`${base}/bench/bench.html`);
    await page.waitForFunction(() => window.bench);
    const opts = which === 'ours' ? { base: `/m/${name}/`, encoder: info.encoder } : { id: name };
    log(`${name} ${which}: loading`);
    try {
      res.load = await withTimeout(page.evaluate(([w, o]) => window.bench.load(w, o), [which, opts]), Math.max(a.cellTimeout, 600), 'load');
      log(`${name} ${which}: loaded in ${res.load.loadS.toFixed(1)} s on ${res.load.adapter}`);
    } catch (e) {
      res.load = { error: crashed ? 'tab crashed (out of memory?)' : shortError(e.message) };
      for (const cell of cells) res.cells[cell.name] = { error: 'load failed' };
      return res;
    }
    let stop = null;
    for (const cell of cells) {
      if (!plan.cells.includes(cell.name)) { res.cells[cell.name] = { skipped: WHY_SKIPPED }; continue; }
      if (stop) { res.cells[cell.name] = { skipped: stop }; continue; }
      const cold = plan.cold.includes(cell.name);
      const runs = which === 'ours'
        ? (cold ? [['dense', false], ['all', true]] : [['first', true], ['dense', false], ['all', true]])
        : (cold ? [['dense', false]] : [['first', false], ['dense', false]]);
      const r = { cold };
      try {
        for (const [key, all] of runs) {
          log(`${name} ${which} ${cell.name}: ${key} run`);
          const out = await withTimeout(page.evaluate(c => window.bench.run(c),
            { texts: cell.texts, batch: cell.batch, all, withDense: key === 'dense' }), a.cellTimeout);
          r[key] = { s: out.s, gpuPeakMiB: out.gpuPeakMiB, heapMiB: out.heapMiB };
          r.gpuPeakMiB = Math.max(r.gpuPeakMiB ?? 0, out.gpuPeakMiB);
          r.heapMiB = Math.max(r.heapMiB ?? 0, out.heapMiB);
          r.lengths = out.lengths;
          if (key === 'dense') { r.denseVecs = out.dense; r.ids = out.ids; }
          log(`${name} ${which} ${cell.name}: ${key} ${out.s.toFixed(2)} s`);
        }
      } catch (e) {
        r.error = crashed ? 'tab crashed (out of memory?)' : shortError(e.message);
        stop = `not run after ${r.error} at ${cell.name}`;
        log(`${name} ${which} ${cell.name}: ${r.error}`);
      }
      res.cells[cell.name] = r;
      if (crashed || r.error) break;
    }
    for (const cell of cells) res.cells[cell.name] ??= { skipped: plan.cells.includes(cell.name) ? (stop ?? 'not run') : WHY_SKIPPED };
  } finally {
    await browser.close().catch(() => {});
  }
  return res;
}

async function runBrowser(a, models, cells) {
  const mounts = {};
  for (const m of models) { mounts[`/m/${m.name}/`] = m.dir; mounts[`/bench-models/${m.name}/`] = m.onnx; }
  const { server, base } = await serve(mounts);
  const out = {};
  try {
    for (const m of models) {
      const plan = a.plan[m.name] ?? (a.gpu ? PLAN_GPU : PLAN)[m.name] ?? { cells: ALL_CELLS, cold: [] };
      out[m.name] = {};
      for (const which of ['ours', 'theirs']) out[m.name][which] = await browserSide(which, m.name, m.info, cells, plan, a, base);
      for (const c of cells) {
        const o = out[m.name].ours.cells[c.name], t = out[m.name].theirs.cells[c.name];
        if (o?.denseVecs && t?.denseVecs) {
          o.cosine = Math.min(...o.denseVecs.map((d, i) => cosine(d, t.denseVecs[i])));
          o.idsMatch = o.ids.every((ids, i) => ids.length === t.ids[i].length && ids.every((x, k) => x === t.ids[i][k]));
        }
        for (const r of [o, t]) if (r) { r.lengthsOk = r.lengths ? r.lengths.every((n, i) => n === c.lengths[i]) : undefined; delete r.denseVecs; delete r.ids; }
      }
    }
  } finally {
    server.close();
  }
  return out;
}

function cosine(a, b) {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return d / Math.sqrt(na * nb);
}

// ------------------------------------------------------------------------------------------
// Native

function runNative(a, models, texts) {
  const outFile = path.join(a.out, 'native.json');
  fs.rmSync(outFile, { force: true });
  const args = [path.join(root, 'scripts/bench_native.py'), '--texts', texts, '--m3', m3, '--python', python,
    '--backends', a.backends, '--flag', a.flag, '--torch-fallback', '--cells', a.cells.join(','), '--cell-timeout', String(a.cellTimeout), '--out', outFile];
  for (const m of models) args.push('--model', `${m.name}=${m.dir}`);
  // The full-size model on this kind of machine: 8192 tokens on the CPU takes many minutes per side.
  if (!a.gpu) for (const s of NATIVE_SKIP) args.push('--skip', s);
  return new Promise((resolve, reject) => {
    const p = spawn('python3', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('exit', code => {
      if (code !== 0) log(`bench_native.py: exit ${code}` + (fs.existsSync(outFile) ? ' (partial results kept)' : ''));
      if (fs.existsSync(outFile)) resolve(JSON.parse(fs.readFileSync(outFile, 'utf8')));
      else reject(new Error(`bench_native.py: exit ${code}`));
    });
  });
}

// ------------------------------------------------------------------------------------------
// Report

const f0 = x => x == null || !isFinite(x) ? '–' : x >= 100 ? Math.round(x).toLocaleString('en-US') : x >= 10 ? x.toFixed(0) : x.toFixed(1);
const label = c => c.batch === 1 ? `${c.lengths[0]} tok ×1` : `32 mixed (${Math.min(...c.lengths)}–${Math.max(...c.lengths)} tok, ${c.tokens} total), batch 32`;

function browserTable(models, cells, br) {
  const rows = ['| model | texts | ours dense tok/s | ours dense+sparse+ColBERT tok/s | transformers.js dense tok/s | ours / theirs (dense) | GPU buffers peak MiB (ours / theirs) | wasm heap MiB (ours / theirs) | ids equal, dense cosine |',
    '|---|---|---:|---:|---:|---:|---|---|---|'];
  const load = ['| model | encoder file | load s (ours / theirs) | first call s, 16 tok incl. shader compilation (ours / theirs) | GPU buffers after load MiB (ours / theirs) | wasm heap after load MiB (ours / theirs) |', '|---|---|---|---|---|---|'];
  for (const m of models) {
    const b = br[m.name];
    if (!b) continue;
    const L = x => x?.error ? `failed: ${x.error}` : f0(x?.loadS);
    const first = r => { const c = r.cells['16']; const x = c?.first ?? (c?.cold ? c.dense : null); return x ? x.s.toFixed(1) : '–'; };
    load.push(`| ${m.name} (${m.info.layers}×${m.info.hidden}) | ${m.info.encoder} ${f0(m.info.bytes / 2 ** 20)} MiB | ${L(b.ours.load)} / ${L(b.theirs.load)} | ${first(b.ours)} / ${first(b.theirs)} | ${f0(b.ours.load?.gpuLiveMiB)} / ${f0(b.theirs.load?.gpuLiveMiB)} | ${f0(b.ours.load?.heapMiB)} / ${f0(b.theirs.load?.heapMiB)} |`);
    for (const c of cells) {
      const o = b.ours.cells[c.name] ?? {}, t = b.theirs.cells[c.name] ?? {};
      const tps = (r, key) => r.skipped ? (r.skipped === WHY_SKIPPED ? 'skipped¹' : r.skipped) : r.error && !r[key] ? r.error : r[key] ? f0(c.tokens / r[key].s) + (r.cold ? 'ᶜ' : '') : r.error ?? '–';
      const od = o.dense ? c.tokens / o.dense.s : null, td = t.dense ? c.tokens / t.dense.s : null;
      const ratio = od && td ? `**${(od / td).toFixed(2)}×**` : '–';
      const match = o.cosine != null ? `${o.idsMatch ? 'yes' : 'NO'}, ${o.cosine.toFixed(7)}` : '–';
      const mem = (k) => `${f0(o[k])} / ${f0(t[k])}`;
      if (o.skipped && t.skipped && o.skipped === t.skipped) { rows.push(`| ${m.name} | ${label(c)} | skipped¹ | skipped¹ | skipped¹ | | | | |`); continue; }
      rows.push(`| ${m.name} | ${label(c)} | ${tps(o, 'dense')} | ${tps(o, 'all')} | ${tps(t, 'dense')} | ${ratio} | ${mem('gpuPeakMiB')} | ${mem('heapMiB')} | ${match} |`);
    }
  }
  return { rows: rows.join('\n'), load: load.join('\n') };
}

function nativeTable(nat) {
  const peer = nat.peer === 'torch' ? `PyTorch (${nat.flag_device})` : `FlagEmbedding (PyTorch ${nat.flag_device})`;
  const rows = [`| model | texts | m3 cpu tok/s | m3 wgpu tok/s | ${peer} tok/s | m3 cpu / FE | m3 wgpu / FE | peak RSS MiB (m3 cpu / m3 wgpu / FE) | dense cosine vs FE (cpu / wgpu) |`,
    '|---|---|---:|---:|---:|---:|---:|---|---|'];
  const tps = r => !r ? '–' : r.skipped ? `skipped (${r.skipped})` : r.error ? r.error : f0(r.tokens / (r.warm_s ?? r.cold_s)) + (r.warm_s == null ? 'ᶜ' : '');
  const ratio = (r, fe) => r && fe && r.cold_s != null && fe.cold_s != null ? `**${((fe.warm_s ?? fe.cold_s) / (r.warm_s ?? r.cold_s)).toFixed(2)}×**` : '–';
  for (const row of nat.rows) {
    const s = row.sides, fe = s.flagembedding;
    const cells = {
      16: '16 tok ×1', 512: '512 tok ×1', 2048: '2048 tok ×1', 8192: '8192 tok ×1',
    };
    const lab = cells[row.cell] ?? `32 mixed (${row.tokens} tok), batch 32`;
    const rss = ['m3-cpu', 'm3-wgpu', 'flagembedding'].map(k => f0(s[k]?.peak_rss_mib)).join(' / ');
    const cos = ['m3-cpu', 'm3-wgpu'].map(k => s[k]?.cosine != null ? s[k].cosine.toFixed(7) : '–').join(' / ');
    rows.push(`| ${row.model} | ${lab} | ${tps(s['m3-cpu'])} | ${tps(s['m3-wgpu'])} | ${tps(fe)} | ${ratio(s['m3-cpu'], fe)} | ${ratio(s['m3-wgpu'], fe)} | ${rss} | ${cos} |`);
  }
  return rows.join('\n');
}

function machine() {
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? os.cpus()[0]?.model;
  const chromium = spawnSync(process.env.CHROMIUM ?? '/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).stdout?.trim();
  return { cpu, cores: os.cpus().length, memGiB: +(os.totalmem() / 2 ** 30).toFixed(0), chromium, node: process.version, loadavg: os.loadavg().map(x => +x.toFixed(2)) };
}

// ------------------------------------------------------------------------------------------

function render(report, cells) {
  const models = report.models;
  const md = [];
  const mi = report.machine;
  md.push(`Command: \`${report.command}\` (${report.minutes} min)`, '');
  md.push(`Machine: ${mi.cpu}, ${mi.cores} cores, ${mi.memGiB} GiB; ${mi.chromium ?? 'no chromium'}; node ${mi.node}; load average ${mi.loadavg?.[0] ?? "?"} at the start, ${report.loadavgEnd?.[0] ?? "?"} at the end`, '');
  md.push('Models (random weights, BGE-M3 layout): ' + models.map(m => `${m.name} = ${m.info.layers} layers × ${m.info.hidden} wide, ${m.info.heads} heads, FFN ${m.info.ffn}`).join('; '), '');
  if (report.browser) {
    const adapters = new Set(Object.values(report.browser).flatMap(b => [b.ours.load?.adapter, b.theirs.load?.adapter]).filter(Boolean));
    const backs = new Set(Object.values(report.browser).flatMap(b => [b.ours.load?.backend, b.theirs.load?.backend]).filter(Boolean));
    const t = browserTable(models, cells, report.browser);
    md.push(`### In the browser (WebGPU adapter: ${[...adapters].join('; ')})`, '', `Backends: ${[...backs].join('; ')}`, '', t.rows, '', t.load, '');
  }
  if (report.native) {
    const n = report.native;
    md.push(`### Native (${n.cpu ?? ''}, ${n.cores} cores; FlagEmbedding on ${n.flag_device}${n.flag_note ? `; ${n.flag_note}` : ''})`, '', nativeTable(n), '');
  }
  md.push('ᶜ one cold run (no warm-up; first-call shader compilation included); otherwise a warm-up run, then the timed run. ¹ not run: over ~5 min per run on this adapter (the plan in scripts/bench.mjs).');
  return md.join('\n');
}

function cellsOf(texts, names) {
  return names.map(n => {
    const c = texts.cells.find(x => x.name === n);
    if (!c) throw new Error(`unknown cell ${n}`);
    return { name: c.name, batch: c.batch, lengths: c.lengths, texts: c.texts, tokens: c.lengths.reduce((s, x) => s + x, 0) };
  });
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  if (a.report && /results-dtypes\.json$/.test(a.report)) {
    const { renderDtypes } = await import('./bench-dtypes.mjs');
    console.log(renderDtypes(JSON.parse(fs.readFileSync(a.report, 'utf8'))));
    return;
  }
  if (a.dtypes) {
    fs.mkdirSync(a.out, { recursive: true });
    const { runDtypes } = await import('./bench-dtypes.mjs');
    await runDtypes(a, { cache, m3, root, log, sh, modelDir, modelInfo, textsFile, cellsOf, serve, chromiumOptions, machine });
    return;
  }
  if (a.report) {
    // Re-render a finished run: node scripts/bench.mjs --report DIR/results.json
    const report = JSON.parse(fs.readFileSync(a.report, 'utf8'));
    const names = report.cellNames ?? a.cells;
    const cells = cellsOf(JSON.parse(fs.readFileSync(path.join(cache, 'texts.json'), 'utf8')), names);
    console.log(render(report, cells));
    return;
  }
  fs.mkdirSync(a.out, { recursive: true });
  fs.mkdirSync(cache, { recursive: true });
  const textsPath = textsFile();
  const cells = cellsOf(JSON.parse(fs.readFileSync(textsPath, 'utf8')), a.cells);
  const models = a.models.map(name => { const dir = modelDir(name); return { name, dir, info: modelInfo(dir) }; });
  if (!a.skipBrowser) {
    if (!fs.existsSync(path.join(root, 'pkg/wasm/bge_m3_web_bg.wasm'))) throw new Error('pkg/wasm is missing: bash scripts/build-wasm.sh');
    if (!fs.existsSync(path.join(root, 'bench/node_modules/@huggingface/transformers/dist/transformers.js'))) {
      // The peer lives in bench/package.json, apart from the test tooling: the tests never install it.
      // onnxruntime-node's install step would fetch CUDA libraries (no network for that here).
      console.log('bench: npm ci in bench/ (transformers.js, onnxruntime-web)');
      sh('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: path.join(root, 'bench'), env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
    }
    for (const m of models) m.onnx = onnxDir(m.name, m.dir);
  }
  const t0 = Date.now();
  const report = { machine: machine(), command: `node scripts/bench.mjs ${process.argv.slice(2).join(' ')}`.trim(), models,
    cellNames: a.cells, started: new Date().toISOString() };
  if (!a.skipBrowser) {
    report.browser = await runBrowser(a, models, cells);
    fs.writeFileSync(path.join(a.out, 'results.json'), JSON.stringify(report, null, 1)); // in case the native half fails
  }
  if (!a.skipNative) report.native = await runNative(a, models, textsPath);
  report.minutes = +((Date.now() - t0) / 60000).toFixed(1);
  report.loadavgEnd = os.loadavg().map(x => +x.toFixed(2));
  const text = render(report, cells);
  fs.writeFileSync(path.join(a.out, 'results.md'), text + '\n');
  fs.writeFileSync(path.join(a.out, 'results.json'), JSON.stringify(report, null, 1));
  console.log(text);
  log(`wrote ${path.join(a.out, 'results.md')} and results.json`);
}

main().catch(e => { console.error('bench:', e.stack ?? e.message); process.exit(1); });
