// BAAI's files picked from disk and converted while they are read (`load(files, { dtype })`;
// pkg/src/files.js convertLocal), measured in headless Chromium (an on-disk profile, as a user's)
// on the wasm CPU backend or WebGPU: per dtype the first load (read + convert + build, the pack
// written to the Cache API), the same files loaded again in a new worker (the pack from the
// cache), the wasm heap after that load and after encoding, encode time, and the dense cosine
// against the f32 files loaded the same way.
//
//   node scripts/bench-picked.mjs --model DIR [--dtypes f32,f16,int8] [--device cpu|webgpu] [--tokens 16] [--runs 2]
//
// DIR holds BAAI's layout: config.json, tokenizer.json, pytorch_model.bin, colbert_linear.pt,
// sparse_linear.pt (e.g. `python3 scripts/random_checkpoint.py DIR --tokenizer ... --std 0.02 --bin`).
// Each dtype runs in a fresh browser and worker (bench/dtype.html, bench/dtype-worker.mjs: the
// model lives on the worker's thread, where its wasm heap is read). Needs pkg/wasm (scripts/build-wasm.sh).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch } from '../tests/browser/server.mjs';

const SOURCES = ['config.json', 'tokenizer.json', 'pytorch_model.bin', 'colbert_linear.pt', 'sparse_linear.pt'];

function args(argv) {
  const a = { dtypes: ['f32', 'f16', 'int8'], device: 'cpu', tokens: 16, runs: 2 };
  for (let i = 0; i < argv.length; i++) {
    const v = () => { if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`); return argv[++i]; };
    switch (argv[i]) {
      case '--model': a.model = path.resolve(v()); break;
      case '--dtypes': a.dtypes = v().split(','); break;
      case '--device': a.device = v(); break;
      case '--tokens': a.tokens = Number(v()); break;
      case '--runs': a.runs = Number(v()); break;
      default: throw new Error(`unknown option ${argv[i]} (--model DIR [--dtypes f32,f16,int8] [--device cpu|webgpu] [--tokens N] [--runs N])`);
    }
  }
  if (!a.model) throw new Error('--model DIR is needed (BAAI\'s layout, with pytorch_model.bin)');
  const missing = SOURCES.filter(f => !fs.existsSync(path.join(a.model, f)));
  if (missing.length) throw new Error(`${a.model} lacks ${missing.join(', ')}`);
  if (!['cpu', 'webgpu'].includes(a.device)) throw new Error('--device cpu or webgpu');
  if (!(a.tokens >= 3) || !(a.runs >= 1)) throw new Error('--tokens >= 3, --runs >= 1');
  return a;
}

const cosine = (x, y) => {
  let d = 0, a = 0, b = 0;
  for (let i = 0; i < x.length; i++) { d += x[i] * y[i]; a += x[i] * x[i]; b += y[i] * y[i]; }
  return d / Math.sqrt(a * b);
};
const MiB = x => (x / 2 ** 20).toFixed(0);

async function runOne(a, base, dtype, text) {
  const browser = await launch({ persistent: true });
  try {
    const page = await browser.newPage();
    let crashed = false;
    page.on('crash', () => { crashed = true; });
    await page.goto(`${base}/bench/dtype.html`);
    await page.waitForFunction(() => window.dtypeBench);
    await page.setInputFiles('#pick', SOURCES.map(f => path.join(a.model, f)));
    const call = (op, opArgs) => page.evaluate(([op, opArgs]) => window.dtypeBench.call(op, opArgs), [op, opArgs])
      .catch(e => ({ error: { message: crashed ? 'the tab crashed (out of memory?)' : e.message.split('\n')[0] } }));
    const loadArgs = { picked: true, dtype: dtype === 'f32' ? undefined : dtype, device: a.device, cache: 'bench-picked' };
    await page.evaluate(() => window.dtypeBench.start());
    const first = await call('load', loadArgs);
    if (first.error) return { dtype, error: first.error };
    let load = first.result, again = null;
    if (dtype !== 'f32') {
      // A new worker (wasm instance), the same files: the converted pack from the Cache API.
      await call('dispose', {});
      await page.evaluate(() => window.dtypeBench.start());
      const second = await call('load', loadArgs);
      if (second.error) return { dtype, first: first.result, error: second.error };
      load = again = second.result;
    }
    const enc = await call('encode', { text, runs: a.runs });
    if (enc.error) return { dtype, first: first.result, again, load, error: enc.error };
    await call('dispose', {});
    return { dtype, first: first.result, again, load, encode: enc.result };
  } finally {
    await browser.close();
  }
}

const a = args(process.argv.slice(2));
if (!fs.existsSync(new URL('../pkg/wasm/bge_m3_web_bg.wasm', import.meta.url))) throw new Error('pkg/wasm is missing: bash scripts/build-wasm.sh');
// A text of about --tokens tokens (XLM-R: one token per short word here, plus <s> and </s>).
const text = Array.from({ length: a.tokens - 2 }, (_, i) => ['river', 'stone', 'light', 'green', 'house', 'water'][i % 6]).join(' ');
const { server, base } = await serve();
const rows = [];
try {
  for (const dtype of a.dtypes) {
    const t0 = Date.now();
    const r = await runOne(a, base, dtype, text);
    r.wallS = (Date.now() - t0) / 1000;
    rows.push(r);
    console.error(`${dtype}: ${r.error ? `[${r.error.kind ?? r.error.name ?? 'error'}] ${r.error.message}` : `loaded in ${r.first.loadS.toFixed(1)} s${r.again ? `, again in ${r.again.loadS.toFixed(1)} s` : ''}, heap ${MiB(r.load.heap)} MiB`}`);
  }
} finally {
  server.close();
}
const ref = rows.find(r => r.dtype === 'f32' && r.encode)?.encode.dense;
const bin = fs.statSync(path.join(a.model, 'pytorch_model.bin')).size;
console.log(`Picked files of ${a.model} (pytorch_model.bin ${(bin / 1e9).toFixed(3)} GB), device ${a.device}, ${os.cpus()[0].model}, ${os.cpus().length} cores; `
  + `one text of ${rows.find(r => r.encode)?.encode.tokens ?? '?'} tokens, ${a.runs} runs (the last timed)`);
console.log('');
console.log('| dtype | first load s (read + convert + build) | of which files s | again s (the pack from the cache) | wasm heap MiB (after load / after encode) | encode s | dense cosine vs f32 |');
console.log('|---|---:|---:|---:|---|---:|---:|');
for (const r of rows) {
  if (r.error && !r.load) { console.log(`| ${r.dtype} | failed: ${r.error.message} | | | | | |`); continue; }
  const cos = ref && r.encode ? cosine(r.encode.dense, ref).toFixed(7) : r.dtype === 'f32' ? '(ref.)' : '–';
  const enc = r.encode ? `${MiB(r.load.heap)} / ${MiB(r.encode.heap)}` : `${MiB(r.load.heap)} / failed: ${r.error.message}`;
  const again = r.again ? r.again.loadS.toFixed(1) : r.dtype === 'f32' ? '(not converted, not cached)' : '–';
  console.log(`| ${r.dtype} | ${r.first.loadS.toFixed(1)} | ${r.first.filesS.toFixed(1)} | ${again} | ${enc} | ${r.encode ? r.encode.times.at(-1).toFixed(2) : '–'} | ${cos} |`);
}
