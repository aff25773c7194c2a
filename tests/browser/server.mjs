// Test helpers: a static file server for the repo (plus ../shared/fixtures at /fixtures/ and
// $M3_MODELS at /models/) and a headless Chromium with WebGPU on SwiftShader.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const fixtures = path.resolve(root, '../shared/fixtures');

const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
  '.json': 'application/json', '.html': 'text/html', '.css': 'text/css', '.svg': 'image/svg+xml' };

export function requireFixtures() {
  if (!fs.existsSync(path.join(fixtures, 'tiny-m3/config.json'))) {
    throw new Error(`fixture missing: ${fixtures}/tiny-m3 (the read-only shared/ folder CI places beside the clone)`);
  }
}

export function serve() {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    let file;
    if (url.startsWith('/fixtures/')) file = path.join(fixtures, url.slice('/fixtures/'.length));
    else if (url.startsWith('/models/') && process.env.M3_MODELS) file = path.join(process.env.M3_MODELS, url.slice('/models/'.length));
    else file = path.join(root, url);
    if (!file.startsWith(root) && !file.startsWith(fixtures) && !(process.env.M3_MODELS && file.startsWith(path.resolve(process.env.M3_MODELS)))) {
      res.writeHead(403).end();
      return;
    }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) { res.writeHead(404).end('not found'); return; }
      res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'content-length': st.size });
      fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${server.address().port}` })));
}

export async function launch() {
  const scratch = fs.mkdtempSync('/tmp/m3-chromium-');
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    env: { ...process.env, XDG_CONFIG_HOME: scratch, XDG_CACHE_HOME: scratch, TMPDIR: scratch },
    args: ['--no-sandbox', '--disable-gpu-sandbox', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--enable-unsafe-webgpu', '--enable-features=Vulkan,WebGPU', '--use-webgpu-adapter=swiftshader',
      '--use-vulkan=swiftshader', '--disable-vulkan-surface', '--use-angle=swiftshader'],
  });
}
