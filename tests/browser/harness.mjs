// Runs inside the test page: loads the wasm module and checks it against a FlagEmbedding
// reference JSON. Everything is returned as plain data for the Node side to assert on.
import init, { M3 } from '/pkg/wasm/bge_m3_web.js';
import { hybridScores } from '/pkg/src/scoring.js';

let ready;
async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

export async function loadFiles(base, encoder = 'pytorch_model.bin') {
  const get = f => fetchBytes(base + f);
  return { config: await get('config.json'), tokenizer: await get('tokenizer.json'), encoder: await get(encoder),
    colbert: await get('colbert_linear.pt'), sparse: await get('sparse_linear.pt') };
}

export async function load(device, base = '/fixtures/tiny-m3/', encoder) {
  ready ??= init();
  await ready;
  return M3.load(await loadFiles(base, encoder), device);
}

/** Shapes the raw wasm output like the npm API: sparse as { ids, weights }, colbert as { data, rows }. */
function shaped(r) {
  return { ...r, sparse: { ids: r.sparseIds, weights: r.sparseWeights }, colbert: { data: r.colbert, rows: r.colbertRows } };
}

export async function parity(device, { base = '/fixtures/tiny-m3/', reference = '/fixtures/tiny-m3-reference.json', tol = 1e-4, encoder } = {}) {
  const t0 = performance.now();
  const model = await load(device, base, encoder);
  const loadMs = performance.now() - t0;
  const ref = await (await fetch(reference)).json();
  const failures = [];
  const worst = { dense: 0, sparse: 0, colbert: 0 };
  const t1 = performance.now();
  const out = await model.encode(ref.items.map(i => i.text), { batchSize: 4 });
  const encodeMs = performance.now() - t1;
  ref.items.forEach((want, n) => {
    const got = out[n];
    if (JSON.stringify([...got.inputIds]) !== JSON.stringify(want.input_ids)) failures.push(`text ${n}: input ids differ`);
    let d = 0;
    want.dense.forEach((v, i) => { d = Math.max(d, Math.abs(v - got.dense[i])); });
    worst.dense = Math.max(worst.dense, d);
    if (d > tol) failures.push(`text ${n}: dense differs by ${d}`);
    const sparse = new Map([...got.sparseIds].map((id, i) => [String(id), got.sparseWeights[i]]));
    d = 0;
    for (const [id, w] of Object.entries(want.sparse)) d = Math.max(d, Math.abs((sparse.get(id) ?? 0) - w));
    for (const [id, w] of sparse) if (!(id in want.sparse)) d = Math.max(d, w);
    worst.sparse = Math.max(worst.sparse, d);
    if (d > tol) failures.push(`text ${n}: sparse differs by ${d}`);
    const flat = want.colbert.flat();
    if (got.colbertRows !== want.colbert.length || got.colbert.length !== flat.length) failures.push(`text ${n}: colbert rows differ`);
    d = 0;
    flat.forEach((v, i) => { d = Math.max(d, Math.abs(v - got.colbert[i])); });
    worst.colbert = Math.max(worst.colbert, d);
    if (d > tol) failures.push(`text ${n}: colbert differs by ${d}`);
  });
  const pairs = ref.scores.pairs;
  const enc = (await model.encode(pairs.flat(), { batchSize: 8 })).map(shaped);
  pairs.forEach((_, k) => {
    const s = hybridScores(enc[2 * k], enc[2 * k + 1], { dense: 0.4, sparse: 0.2, colbert: 0.4 });
    for (const [name, want] of Object.entries(ref.scores.result)) {
      const d = Math.abs(s[name] - want[k]);
      worst[name] = Math.max(worst[name] ?? 0, d);
      if (d > tol) failures.push(`pair ${k} ${name}: ${s[name]} vs ${want[k]}`);
    }
  });
  return { backend: model.backend, adapter: model.adapter, texts: ref.items.length, failures, worst, loadMs, encodeMs };
}

/** Bad inputs: every call must reject with an Error whose message says what went wrong, and the
 *  model must keep working afterwards. Returns the messages. */
export async function badInputs(device) {
  ready ??= init();
  await ready;
  const files = await loadFiles('/fixtures/tiny-m3/');
  const msgs = {};
  const grab = async (name, f) => {
    try { await f(); msgs[name] = 'no error'; } catch (e) { msgs[name] = (e instanceof Error ? '' : 'NOT AN ERROR: ') + (e?.message ?? String(e)); }
  };
  await grab('truncatedEncoder', () => M3.load({ ...files, encoder: files.encoder.subarray(0, files.encoder.length >> 1) }, device));
  await grab('foreignEncoder', () => M3.load({ ...files, encoder: new TextEncoder().encode('<html>not a model</html>') }, device));
  await grab('missingFile', () => M3.load({ ...files, sparse: undefined }, device));
  const badConfig = new TextEncoder().encode(new TextDecoder().decode(files.config).replace('"intermediate_size": 64', '"intermediate_size": 80'));
  await grab('wrongShape', () => M3.load({ ...files, config: badConfig }, device));
  await grab('badDevice', () => M3.load(files, 'tpu'));
  const model = await M3.load(files, device);
  await grab('notAnArray', () => model.encode('hello', {}));
  await grab('nonString', () => model.encode(['ok', 42], {}));
  await grab('badMaxLength', () => model.encode(['ok'], { maxLength: 100000 }));
  await grab('badOption', () => model.encode(['ok'], { dense: 'yes' }));
  const empty = await model.encode([], {});
  const after = await model.encode(['still works'], { sparse: false, colbert: false });
  return { msgs, emptyLength: empty.length, afterDense: after[0].dense.length, afterHasSparse: 'sparseIds' in after[0] };
}
