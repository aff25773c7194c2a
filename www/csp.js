// The demo's Content-Security-Policy, one owner for three readers:
//   - the demo server (tests/browser/server.mjs, behind scripts/serve.mjs) sends it as an HTTP
//     header on the page and on the package's worker script. The header is what governs the
//     worker, which does every model download: a dedicated worker takes its policy from its own
//     script's response, never from the page's <meta> tag;
//   - www/index.html repeats it in a <meta> tag, for hosts that cannot send headers (it then
//     governs the page only); the browser tests check that the two agree;
//   - the page (model-panel.js) asks `connectAllowed` whether a model host is allowed, to warn
//     before a load the browser would block and to explain the failure after it.
// Deploying the demo elsewhere: docs/deploy.md.

/** Where model files may come from besides the page's own origin: the Hugging Face hub and its
 *  download hosts (LFS and Xet files are served from subdomains of huggingface.co and hf.co). */
export const MODEL_HOSTS = ['https://huggingface.co', 'https://*.huggingface.co', 'https://*.hf.co'];

export const DIRECTIVES = {
  'default-src': ["'self'"],
  'script-src': ["'self'", "'wasm-unsafe-eval'"], // the wasm module is compiled, never eval'd
  'worker-src': ["'self'", 'blob:'],
  'connect-src': ["'self'", ...MODEL_HOSTS],
  'img-src': ["'self'", 'data:', 'blob:'],
  'style-src': ["'self'"],
  'font-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"], // no framing (clickjacking); header only
};

/** Directives a <meta> policy may not carry (the browser ignores them there, with a warning). */
export const HEADER_ONLY = ['frame-ancestors', 'report-uri', 'report-to', 'sandbox'];

/** The policy as text: for the HTTP header, or (`meta: true`) for the <meta> tag. */
export function policy({ meta = false } = {}) {
  return Object.entries(DIRECTIVES)
    .filter(([name]) => !meta || !HEADER_ONLY.includes(name))
    .map(([name, sources]) => `${name} ${sources.join(' ')}`)
    .join('; ');
}

/** Whether `connect-src` lets a page (or worker) at `self` (an origin) fetch `url`: 'self' is the
 *  same origin; "https://host" that host; "https://*.host" its subdomains (not the host itself). */
export function connectAllowed(url, self) {
  const u = new URL(url, self);
  if (u.origin === new URL(self).origin) return true;
  return MODEL_HOSTS.some(src => {
    const m = /^(\w+):\/\/(\*\.)?([^/:]+)$/.exec(src);
    if (!m || u.protocol !== `${m[1]}:` || u.port) return false;
    return m[2] ? u.hostname.endsWith(`.${m[3]}`) : u.hostname === m[3];
  });
}
