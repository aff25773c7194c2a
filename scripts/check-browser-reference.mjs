// Compares the npm package (load + encode in headless Chromium, in its worker) with a
// FlagEmbedding reference file as written by ../shared/fixtures/make_fixture.py:
//   M3_MODELS=path/to/models node scripts/check-browser-reference.mjs MODEL_DIR REFERENCE.json [cpu|webgpu] [encoder file]
// MODEL_DIR and REFERENCE.json are relative to $M3_MODELS. Needs `bash scripts/build-wasm.sh` first.
import { serve, launch } from '../tests/browser/server.mjs';

const [dir, reference, device = 'cpu', encoderFile] = process.argv.slice(2);
if (!process.env.M3_MODELS || !dir || !reference) {
  console.error('usage: M3_MODELS=DIR node scripts/check-browser-reference.mjs MODEL_DIR REFERENCE.json [cpu|webgpu] [pytorch_model.bin|model.safetensors]');
  process.exit(2);
}
const { server, base } = await serve();
const browser = await launch();
const page = await browser.newPage();
page.on('console', m => { if (m.type() === 'error') console.log('[page]', m.text()); });
await page.goto(`${base}/tests/browser/harness.html`);
const r = await page.evaluate(async args => (await import('/tests/browser/pkg-harness.mjs')).parity(args),
  { base: `/models/${dir}/`, reference: `/models/${reference}`, device, encoderFile });
console.log(JSON.stringify(r, null, 1));
await browser.close();
server.close();
process.exit(r.failures.length ? 1 : 0);
