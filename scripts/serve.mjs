// Serves the repository (the demo page at /www/, the package at /pkg/) and ../shared/fixtures at
// /fixtures/ on http://$HOST:$PORT (default 127.0.0.1:8080), with the test server's file mapping
// and headers: the demo's Content-Security-Policy on the page and its worker (docs/deploy.md).
import fs from 'node:fs';
import path from 'node:path';
import { serve, fixtures } from '../tests/browser/server.mjs';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`serve: PORT must be a port number (got ${JSON.stringify(process.env.PORT)})`);
  process.exit(1);
}
let base;
try {
  ({ base } = await serve({ port, host }));
} catch (e) {
  console.error(e.code === 'EADDRINUSE' ? `serve: port ${port} is in use; run with PORT=another port` : `serve: ${e.message}`);
  process.exit(1);
}
{
  console.log(`\nBGE-M3 demo: ${base}/www/`);
  console.log('  (loads BAAI/bge-m3 from the Hugging Face hub: 2.3 GB, downloaded once, then cached in the browser)');
  if (fs.existsSync(path.join(fixtures, 'tiny-m3/config.json'))) {
    console.log(`\nWith the local tiny test model (random weights: the ranking is meaningless, everything else is real):`);
    console.log(`  ${base}/www/?model=/fixtures/tiny-m3/`);
    console.log(`  ${base}/www/?model=/fixtures/tiny-m3/&device=cpu   (wasm CPU backend)`);
  }
  console.log('\nStop with Ctrl-C.');
}
