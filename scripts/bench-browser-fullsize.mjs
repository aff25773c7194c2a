// Loads a full-size model in headless Chromium (WebGPU on whatever adapter it finds; here
// SwiftShader), encodes a short text and prints wasm heap and GPU buffer figures.
//   M3_MODELS=path/to/models node scripts/bench-browser-fullsize.mjs [full-m3] [model.safetensors] [16,512] [webgpu|cpu]
// $M3_MODELS is the folder that holds the model folder (default name full-m3), e.g. one written by
// `python3 scripts/random_checkpoint.py path/to/models/full-m3 --tokenizer .../tokenizer.json`.
// The model is fetched through the package's loader into the Cache API (streamed to disk) and read
// tensor by tensor in a worker, as the npm package does.
// Needs `bash scripts/build-wasm.sh` first. Not part of CI (minutes on SwiftShader).
import { serve, launch } from '../tests/browser/server.mjs';
const [dir = 'full-m3', encoder = 'model.safetensors', tokens = '16', device = 'webgpu'] = process.argv.slice(2);
if (!process.env.M3_MODELS) { console.error('set M3_MODELS to the folder that holds the model folder'); process.exit(2); }
const { server, base } = await serve();
const browser = await launch({ persistent: true });
const page = await browser.newPage();
page.on('console', m => console.log('[page]', m.text()));
await page.goto(`${base}/tests/browser/fullsize.html?model=/models/${dir}/&encoder=${encoder}&tokens=${tokens}&device=${device}`);
const res = await page.evaluate(() => window.result);
console.log(JSON.stringify(res, null, 1));
await browser.close();
server.close();
process.exit(res.error ? 1 : 0);
