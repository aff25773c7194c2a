// Runs inside the test page: the npm package's public API (pkg/src/index.js), as an app uses it.
// Every function returns plain data for the Node side to assert on.
import { load, hybridScores, clearCache, isCached } from '/pkg/src/index.js';
import { matchesReference } from '/tests/browser/pack-bounds.mjs';

const grab = async f => {
  try { await f(); return { name: 'none', message: 'no error' }; } catch (e) {
    return { name: e?.name, message: e?.message ?? String(e), kind: e?.kind, status: e?.status, url: e?.url, missing: e?.missing, isError: e instanceof Error || e instanceof DOMException };
  }
};

function maxDiff(a, b) {
  let d = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < Math.min(a.length, b.length); i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** FlagEmbedding parity through load + encode (windows off: truncate like FlagEmbedding), and
 *  the scores through the package's helpers and through model.score. */
export async function parity({ base = '/fixtures/tiny-m3/', reference = '/fixtures/tiny-m3-reference.json', device = 'cpu', tol = 1e-4, encoderFile, worker = true, maxItemTokens = Infinity } = {}) {
  const t0 = performance.now();
  const model = await load(base, { device, encoderFile, cache: false, worker });
  const loadMs = performance.now() - t0;
  const ref = await (await fetch(reference)).json();
  ref.items = ref.items.filter(i => i.input_ids.length <= maxItemTokens);
  const failures = [];
  const worst = {};
  const note = (what, d) => { worst[what] = Math.max(worst[what] ?? 0, d); return d; };
  const t1 = performance.now();
  const out = await model.encode(ref.items.map(i => i.text), { truncate: true, batchSize: 4 });
  const encodeMs = performance.now() - t1;
  ref.items.forEach((want, n) => {
    const got = out[n];
    if (JSON.stringify([...got.inputIds]) !== JSON.stringify(want.input_ids)) failures.push(`text ${n}: input ids differ`);
    if (got.windows.length !== 1) failures.push(`text ${n}: ${got.windows.length} windows`);
    if (note('dense', maxDiff(got.dense, want.dense)) > tol) failures.push(`text ${n}: dense`);
    const sparse = new Map([...got.sparse.ids].map((id, i) => [String(id), got.sparse.weights[i]]));
    let d = 0, off = false;
    for (const [id, w] of Object.entries(want.sparse)) {
      const e = Math.abs((sparse.get(id) ?? 0) - w);
      d = Math.max(d, e);
      off ||= !matchesReference(e, w, tol);
    }
    for (const [id, w] of sparse) if (!(id in want.sparse)) { d = Math.max(d, w); off ||= w > tol; }
    note('sparse', d);
    if (off) failures.push(`text ${n}: sparse differs by ${d}`);
    if (got.colbert.rows !== want.colbert.length || got.colbert.dim !== want.dense.length) failures.push(`text ${n}: colbert shape`);
    if (note('colbert', maxDiff(got.colbert.data, want.colbert.flat())) > tol) failures.push(`text ${n}: colbert`);
  });
  const short = async t => (await model.tokenize(t)).ids.length <= maxItemTokens;
  const pairs = [], wantScores = {};
  for (const [k, pair] of ref.scores.pairs.entries()) {
    if (!(await short(pair[0])) || !(await short(pair[1]))) continue;
    pairs.push(pair);
    for (const [name, v] of Object.entries(ref.scores.result)) (wantScores[name] ??= []).push(v[k]);
  }
  const enc = await model.encode(pairs.flat(), { truncate: true }); // compute_score truncates at 8192
  for (let k = 0; k < pairs.length; k++) {
    const s = hybridScores(enc[2 * k], enc[2 * k + 1]);
    const s2 = (await model.score(pairs[k][0], [pairs[k][1]], { truncate: true }))[0];
    for (const [name, want] of Object.entries(wantScores)) {
      if (!matchesReference(note(name, Math.abs(s[name] - want[k])), want[k], tol)) failures.push(`pair ${k} ${name}: ${s[name]} vs ${want[k]}`);
      if (!matchesReference(note(`score() ${name}`, Math.abs(s2[name] - want[k])), want[k], tol)) failures.push(`pair ${k} score() ${name}: ${s2[name]} vs ${want[k]}`);
    }
  }
  const info = { backend: model.backend, adapter: model.adapter, hiddenSize: model.hiddenSize, maxTokens: model.maxTokens };
  await model.dispose();
  return { ...info, texts: ref.items.length, pairs: pairs.length, failures, worst, loadMs, encodeMs };
}

/** A 20,000-token text: windows of <= maxLength tokens whose spans tile the text; the
 *  document-level outputs are assembled as documented; a window equals the same ids encoded alone. */
export async function windows({ device = 'cpu' } = {}) {
  const model = await load('/fixtures/tiny-m3/', { device, cache: false });
  const ref = await (await fetch('/fixtures/tiny-m3-reference.json')).json();
  const longText = ref.items.slice(-3).map(i => i.text).join('\n\n');
  let text = longText;
  while ((await model.tokenize(text)).ids.length < 20000) text += '\n\n' + longText;
  // Cut just past 20,000 tokens (the loop overshoots by up to a copy: ~31,000 tokens, a third more
  // work on the wasm CPU backend for no more windows' worth of checks).
  text = text.slice(0, (await model.tokenize(text)).ends[20_100]);
  const tok = await model.tokenize(text);
  const progress = [];
  const [doc] = await model.encode([text], { overlap: 128, tokenStrings: true, colbertSpans: true, onProgress: p => progress.push(p) });
  const ws = doc.windows;
  const norm = v => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  // A middle window equals its ids encoded on their own. Not through the text of its span: that
  // text alone tokenizes differently at the cut (a leading "▁" for a cut inside a word), so the
  // ids go to the wasm module's encodeIds (the package has no encode-by-ids).
  const mid = ws[1];
  const alone = await encodeIdsAlone(mid.inputIds, device);
  let sparseMaxOk = true;
  const docSparse = new Map([...doc.sparse.ids].map((id, i) => [id, doc.sparse.weights[i]]));
  for (const w of ws) w.sparse.ids.forEach((id, i) => { if (docSparse.get(id) < w.sparse.weights[i]) sparseMaxOk = false; });
  const result = {
    chars: text.length, tokens: tok.ids.length, inputIds: doc.inputIds.length,
    windows: ws.map(w => ({ start: w.start, end: w.end, tokenStart: w.tokenStart, tokenEnd: w.tokenEnd, ids: w.inputIds.length, first: w.inputIds[0], last: w.inputIds[w.inputIds.length - 1], denseNorm: norm(w.dense), colbertRows: w.colbert.rows, spans: w.colbertSpans.length })),
    docDenseNorm: norm(doc.dense), docColbertRows: doc.colbert.rows, docColbertSpans: doc.colbertSpans.length,
    sparseMaxOk, sparseTokens: doc.sparse.tokens.length === doc.sparse.ids.length && doc.sparse.tokens.every(t => typeof t === 'string' && t.length > 0),
    progressLast: progress.at(-1), progressCount: progress.length,
    // Equal ids -> equal outputs: the window against its ids encoded alone.
    midSameIds: JSON.stringify([...alone.inputIds]) === JSON.stringify([...mid.inputIds]),
    midDenseDiff: maxDiff(alone.dense, mid.dense),
    midColbertDiff: maxDiff(alone.colbert.data, mid.colbert.data),
    truncated: await model.encode(text, { truncate: true, dense: true, sparse: false, colbert: false }).then(r => ({ windows: r.windows.length, ids: r.inputIds.length, truncated: r.truncated, end: r.windows[0].end })),
    // Every output, for the comparison with `m3 encode` (tests/browser/pkg.test.mjs).
    outputs: plainOutputs(text, doc),
  };
  await model.dispose();
  return result;
}

/** `ids` (one window, <s> ... </s>) encoded alone by the wasm module on this thread. */
async function encodeIdsAlone(ids, device) {
  const { default: init, M3 } = await import('/pkg/wasm/bge_m3_web.js');
  await init();
  const bytes = async f => new Uint8Array(await (await fetch('/fixtures/tiny-m3/' + f)).arrayBuffer());
  const m3 = await M3.load({ config: await bytes('config.json'), tokenizer: await bytes('tokenizer.json'), encoder: await bytes('pytorch_model.bin'),
    colbert: await bytes('colbert_linear.pt'), sparse: await bytes('sparse_linear.pt') }, device);
  try {
    const [alone] = await m3.encodeIds([ids], {});
    return alone;
  } finally {
    m3.free();
  }
}

/** Second load from the Cache API; a changed cached file is detected and fetched again. */
export async function cache() {
  const name = 'bge-m3-web-test';
  await clearCache(name);
  // One load + encode + dispose; which file came from where ("file:phase").
  const loadOnce = async () => {
    const events = [];
    const t = performance.now();
    const model = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: name, onProgress: p => events.push(p) });
    const ms = performance.now() - t;
    const { dense } = await model.encode('cached?');
    await model.dispose();
    return { ms, dense, phases: [...new Set(events.map(e => `${e.file}:${e.phase}`))] };
  };
  const first = await loadOnce();
  const second = await loadOnce();
  // Damage the cached checkpoint (same metadata, half the bytes), as a crashed write would.
  const store = await caches.open(name);
  const url = new URL('/fixtures/tiny-m3/pytorch_model.bin', location.href).href;
  const whole = await (await store.match(url)).arrayBuffer();
  await store.put(url, new Response(whole.slice(0, whole.byteLength >> 1)));
  const third = await loadOnce();
  const restored = (await (await store.match(url)).arrayBuffer()).byteLength === whole.byteLength;
  await clearCache(name);
  return { firstPhases: first.phases, secondPhases: second.phases, thirdPhases: third.phases, restored,
    same: maxDiff(first.dense, second.dense) === 0 && maxDiff(first.dense, third.dense) === 0, firstMs: first.ms, secondMs: second.ms };
}

/** Abort during encode and during load: AbortError, and the model keeps working. */
export async function abort() {
  const model = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: false });
  const ref = await (await fetch('/fixtures/tiny-m3-reference.json')).json();
  // 80 texts of ~700 tokens: 8 chunks of 11 (the token budget); the abort comes with the first
  // chunk's progress. If the worker kept going, the next call would wait for all 8 chunks.
  const medium = ref.items.find(i => i.input_ids.length > 500 && i.input_ids.length < 1000).text;
  const ctl = new AbortController();
  const started = performance.now();
  let firstChunkMs = null;
  const p = model.encode(Array(80).fill(medium), { signal: ctl.signal, onProgress: () => { firstChunkMs ??= performance.now() - started; ctl.abort(); } });
  const encodeErr = await grab(() => p);
  const pre = new AbortController();
  pre.abort();
  const preErr = await grab(() => model.encode('x', { signal: pre.signal }));
  const after = await model.encode('still works', { sparse: false, colbert: false });
  const nextCallDoneMs = performance.now() - started;
  const lctl = new AbortController();
  const lp = load('/fixtures/tiny-m3/', { device: 'cpu', cache: false, signal: lctl.signal });
  setTimeout(() => lctl.abort(), 5);
  const loadErr = await grab(() => lp);
  await model.dispose();
  return { encodeErr, preErr, loadErr, firstChunkMs, nextCallDoneMs, afterDense: after.dense.length };
}

/** Bad input: what each failure says. */
export async function badInputs() {
  const r = {};
  r.notFound = await grab(() => load('/fixtures/no-such-model/', { device: 'cpu', cache: false }));
  r.truncated = await grab(() => load('/truncated/tiny-m3/', { device: 'cpu', cache: false }));
  r.unreachable = await grab(() => load('http://127.0.0.1:9/', { device: 'cpu', cache: false }));
  r.badDevice = await grab(() => load('/fixtures/tiny-m3/', { device: 'tpu' }));
  r.badCompute = await grab(() => load('/fixtures/tiny-m3/', { device: 'cpu', compute: 'bf16' }));
  r.badKernel = await grab(() => load('/fixtures/tiny-m3/', { device: 'cpu', kernel: 'cudnn' }));
  const bytes = async f => new Uint8Array(await (await fetch('/fixtures/tiny-m3/' + f)).arrayBuffer());
  const files = { config: await bytes('config.json'), tokenizer: await bytes('tokenizer.json'), encoder: new TextEncoder().encode('<!doctype html><title>Not found</title>'), colbert: await bytes('colbert_linear.pt'), sparse: await bytes('sparse_linear.pt') };
  r.foreign = await grab(() => load(files, { device: 'cpu' }));
  r.missingFiles = await grab(() => load([new File(['{}'], 'config.json')], { device: 'cpu' }));
  const model = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: false });
  r.number = await grab(() => model.encode(42));
  r.nonString = await grab(() => model.encode(['ok', null]));
  r.badMaxLength = await grab(() => model.encode('ok', { maxLength: 100000 }));
  r.badOverlap = await grab(() => model.encode('ok', { maxLength: 100, overlap: 60 }));
  r.badFlag = await grab(() => model.encode('ok', { dense: 'yes' }));
  const empty = await model.encode([]);
  const emptyText = await model.encode('');
  const after = await model.encode(['works'], { sparse: false, colbert: false });
  await model.dispose();
  r.afterDispose = await grab(() => model.encode('x'));
  return { r, emptyLength: Array.isArray(empty) ? empty.length : -1, emptyTextIds: [...emptyText.inputIds], afterDense: after[0].dense.length, afterKeys: Object.keys(after[0]).sort() };
}

/** The page keeps handling events while the worker encodes: the longest gap between 10 ms timer ticks. */
export async function responsive({ device = 'cpu' } = {}) {
  const model = await load('/fixtures/tiny-m3/', { device, cache: false });
  const ref = await (await fetch('/fixtures/tiny-m3-reference.json')).json();
  const long = ref.items.filter(i => i.input_ids.length > 500 && i.input_ids.length < 4000).map(i => i.text);
  let ticks = 0, worst = 0, last = performance.now(), clicks = 0;
  const button = document.body.appendChild(document.createElement('button'));
  button.onclick = () => clicks++;
  const timer = setInterval(() => { const now = performance.now(); worst = Math.max(worst, now - last); last = now; ticks++; button.click(); }, 10);
  const t0 = performance.now();
  await model.encode([...long, ...long]);
  const encodeMs = performance.now() - t0;
  clearInterval(timer);
  await model.dispose();
  return { encodeMs, ticks, worstGapMs: worst, clicks };
}

/** A text's encode() result as plain arrays (sparse as { id: weight }), to compare with the CLI's JSON. */
function plainOutputs(text, doc) {
  const sparse = s => Object.fromEntries([...s.ids].map((id, i) => [String(id), s.weights[i]]));
  return {
    text,
    inputIds: [...doc.inputIds],
    dense: [...doc.dense], sparse: sparse(doc.sparse), colbert: [...doc.colbert.data],
    windows: doc.windows.map(w => ({ start: w.start, end: w.end, tokens: [w.tokenStart, w.tokenEnd], dense: [...w.dense], sparse: sparse(w.sparse), colbertRows: w.colbert.rows })),
  };
}

/** The default weights of compute_score as the JS package and the Rust crate hold them. */
export async function defaultWeights() {
  const { DEFAULT_WEIGHTS } = await import('/pkg/src/index.js');
  const { default: init, M3 } = await import('/pkg/wasm/bge_m3_web.js');
  await init();
  return { js: { ...DEFAULT_WEIGHTS }, rust: M3.defaultWeights() };
}

/** A panic inside wasm after an await (the test hook M3.panicForTests): the call in flight and a
 *  queued one reject with kind 'crashed' within seconds, later calls too, and load() again works. */
export async function crash({ worker }) {
  const model = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: false, worker });
  const t0 = performance.now();
  const inFlight = grab(() => model.call('panicForTests', {}));
  const queued = grab(() => model.encode('queued behind the crash'));
  const [crashErr, queuedErr] = await Promise.all([inFlight, queued]);
  const crashMs = performance.now() - t0;
  const laterErr = await grab(() => model.encode('after the crash'));
  const again = await load('/fixtures/tiny-m3/', { device: 'cpu', cache: false, worker });
  const dense = (await again.encode('works again', { sparse: false, colbert: false })).dense.length;
  await again.dispose();
  await model.dispose();
  return { crashErr, queuedErr, laterErr, crashMs, dense };
}

/** For tests/browser/nogpu.test.mjs, in a browser without a WebGPU adapter: one step each, so
 *  that the Node side can count the server's requests in between. */
export async function noAdapterStep(step) {
  const cache = 'm3-no-adapter';
  const base = '/fixtures/tiny-m3/';
  switch (step) {
    case 'fill': {
      await clearCache(cache);
      const m = await load(base, { device: 'cpu', cache });
      await m.dispose();
      return { cached: await isCached(base, { cache }), adapter: !!(await navigator.gpu?.requestAdapter?.()) };
    }
    case 'webgpu': {
      const err = await grab(() => load(base, { device: 'webgpu', cache }));
      return { err, cached: await isCached(base, { cache }) };
    }
    case 'auto': {
      const m = await load(base, { device: 'auto', cache });
      const r = { backend: m.backend, adapter: m.adapter, dense: (await m.encode('falls back', { sparse: false, colbert: false })).dense.length };
      await m.dispose();
      await clearCache(cache);
      return r;
    }
  }
}
