// Test helpers: a static file server for the repo (plus ../shared/fixtures at /fixtures/,
// $M3_MODELS at /models/, /truncated/X = the first half of /fixtures/X, and the folders of
// `mounts`) and a headless Chromium with WebGPU on SwiftShader. `server.requests` lists every
// path asked for.
// It is also the demo's server (scripts/serve.mjs): what the demo page loads gets the demo's
// Content-Security-Policy as an HTTP header (www/csp.js owns it; docs/deploy.md).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { policy } from '../../www/csp.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const fixtures = path.resolve(root, '../shared/fixtures');

const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
  '.json': 'application/json', '.html': 'text/html', '.css': 'text/css', '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8', '.md': 'text/markdown; charset=utf-8', '.png': 'image/png' };

export function requireFixtures() {
  if (!fs.existsSync(path.join(fixtures, 'tiny-m3/config.json'))) {
    throw new Error(`fixture missing: ${fixtures}/tiny-m3 (the read-only shared/ folder CI places beside the clone)`);
  }
}

/** The demo's headers: its Content-Security-Policy, and no Referer to other sites (the page's URL
 *  may carry a ?model=). Sent on the page (everything under /www/) and on what a page under /www/
 *  asks for (by its Referer): that includes the package's worker script, whose own response's
 *  header is the only policy a dedicated worker has. The package's own test pages (no /www/
 *  Referer) get a worker without it. */
export const DEMO_HEADERS = { 'content-security-policy': policy(), 'referrer-policy': 'same-origin' };
const demoRequest = (req, url) => {
  if (url.startsWith('/www/')) return true;
  try { return new URL(req.headers.referer).pathname.startsWith('/www/'); } catch { return false; }
};

/** `csp: false` leaves out the demo's headers (to show what they change); `cors: true` lets pages
 *  of other origins fetch the files (a second server as "another site"); `mounts`: URL prefix ->
 *  folder (e.g. `{ '/packs/': dir }`), looked up on every request, so a test may repoint one
 *  (the returned `mounts` is the same object). */
export function serve({ root: top = root, port = 0, host = '127.0.0.1', csp = true, cors = false, mounts = {} } = {}) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    requests.push(url);
    const headers = { 'x-content-type-options': 'nosniff', 'cache-control': 'no-cache', vary: 'Referer' };
    if (csp && demoRequest(req, url)) Object.assign(headers, DEMO_HEADERS);
    if (cors) headers['access-control-allow-origin'] = '*';
    let file, half = false;
    const mount = Object.keys(mounts).find(prefix => url.startsWith(prefix));
    const mountDir = mount && path.resolve(mounts[mount]);
    if (mount) file = path.join(mountDir, url.slice(mount.length));
    else if (url.startsWith('/fixtures/')) file = path.join(fixtures, url.slice('/fixtures/'.length));
    else if (url.startsWith('/truncated/')) { file = path.join(fixtures, url.slice('/truncated/'.length)); half = true; }
    else if (url.startsWith('/models/') && process.env.M3_MODELS) file = path.join(process.env.M3_MODELS, url.slice('/models/'.length));
    else file = path.join(top, url.endsWith('/') ? url + 'index.html' : url);
    if (mount ? !file.startsWith(mountDir + path.sep) : !file.startsWith(top) && !file.startsWith(fixtures) && !(process.env.M3_MODELS && file.startsWith(path.resolve(process.env.M3_MODELS)))) {
      res.writeHead(403, headers).end();
      return;
    }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) { res.writeHead(404, headers).end('not found'); return; }
      const size = half ? st.size >> 1 : st.size;
      res.writeHead(200, { ...headers, 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'content-length': size });
      if (size === 0) res.end();
      else fs.createReadStream(file, { start: 0, end: size - 1 }).pipe(res);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, requests, mounts, base: `http://${host.includes(':') ? `[${host}]` : host}:${server.address().port}` }));
  });
}

// Chromium's flags for WebGPU on SwiftShader without network noise: one list, in webdriver.json
// (which `wasm-pack test --chrome` reads too).
const webdriver = JSON.parse(fs.readFileSync(new URL('../../webdriver.json', import.meta.url), 'utf8'));
const chromiumArgs = webdriver['goog:chromeOptions'].args;

/** Headless Chromium with WebGPU on SwiftShader (`webgpu: false`: no adapter). `persistent: true` gives a browser context with
 *  an on-disk profile (as a user's): its Cache API is on disk, not in memory like the default
 *  incognito-style context's (which refuses entries of a gigabyte). Returns an object with
 *  `newPage()` and `close()` either way. */
export async function launch({ persistent = false, webgpu = true } = {}) {
  const scratch = fs.mkdtempSync('/tmp/m3-chromium-');
  const options = {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    env: { ...process.env, XDG_CONFIG_HOME: scratch, XDG_CACHE_HOME: scratch, TMPDIR: scratch },
    // Without --enable-unsafe-webgpu, navigator.gpu exists but finds no adapter (SwiftShader is
    // blocklisted): a browser with WebGPU and no usable GPU.
    args: webgpu ? chromiumArgs : chromiumArgs.filter(a => a !== '--enable-unsafe-webgpu'),
  };
  if (!persistent) return chromium.launch(options);
  const context = await chromium.launchPersistentContext(path.join(scratch, 'profile'), options);
  return { newPage: () => context.newPage(), close: async () => { await context.close(); fs.rmSync(scratch, { recursive: true, force: true }); } };
}
