// Checks that pkg/wasm holds a release build (wasm-opt ran, and the module is the one built):
//   node scripts/check-release.mjs               (pkg/package.json's prepublishOnly runs this)
//   node scripts/check-release.mjs TARBALL       (also: the tarball holds that module and the listed files)
import fs from 'node:fs';
import crypto from 'node:crypto';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const root = path.join(path.dirname(new URL(import.meta.url).pathname), '..');
const fail = msg => { console.error(`check-release: ${msg}`); process.exit(1); };
const sha256 = bytes => crypto.createHash('sha256').update(bytes).digest('hex');

const buildFile = path.join(root, 'pkg/wasm/build.json');
if (!fs.existsSync(buildFile)) fail('pkg/wasm/build.json is missing: build with `bash scripts/release.sh`');
const build = JSON.parse(fs.readFileSync(buildFile, 'utf8'));
if (build.wasmOpt !== true) fail('pkg/wasm holds a test build without wasm-opt: build with `bash scripts/release.sh`');
const wasm = fs.readFileSync(path.join(root, 'pkg/wasm/bge_m3_web_bg.wasm'));
if (sha256(wasm) !== build.sha256) fail('pkg/wasm/bge_m3_web_bg.wasm changed after the release build');

const tarball = process.argv[2];
if (tarball) {
  const listed = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).trim().split('\n').map(f => f.replace(/^package\//, ''));
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'pkg/package.json'), 'utf8'));
  for (const f of manifest.files) {
    if (!listed.some(l => l === f || l.startsWith(f))) fail(`${tarball} lacks ${f}`);
  }
  const packed = execFileSync('tar', ['xzOf', tarball, 'package/wasm/bge_m3_web_bg.wasm'], { maxBuffer: 1 << 30 });
  if (sha256(packed) !== build.sha256) fail(`${tarball} holds another wasm module than the release build`);
  const size = fs.statSync(tarball).size;
  console.log(`check-release: ${tarball}: ${(size / 1e6).toFixed(1)} MB packed, ${listed.length} files; ` +
    `wasm ${(build.bytes / 1e6).toFixed(1)} MB raw, ${(build.gzipBytes / 1e6).toFixed(1)} MB gzip -9 (wasm-opt -O2)`);
} else {
  console.log(`check-release: pkg/wasm is a release build (wasm ${(build.bytes / 1e6).toFixed(1)} MB raw)`);
}
