// Small DOM and formatting helpers shared by the demo's modules.

export const $ = id => document.getElementById(id);

const nf = new Intl.NumberFormat('en');
export const fmtInt = n => nf.format(Math.round(n));
export function fmtBytes(b) {
  if (b == null) return '?';
  const u = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
  return `${b.toFixed(i === 0 || b >= 100 ? 0 : 1)} ${u[i]}`;
}
export const fmtScore = x => (Number.isFinite(x) ? x.toFixed(3) : '–');

/** An element: `props` are attributes, plus class, text, dataset and on<event> listeners. */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, '');
    else if (v !== false && v != null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c != null) e.append(c);
  return e;
}

/** Shows `message` in a .msg element (kind: error, warn, info, ok); no message hides it. */
export function show(node, message, kind = 'error') {
  if (!message) { node.hidden = true; node.textContent = ''; return; }
  node.hidden = false;
  node.className = `msg ${kind}`;
  node.textContent = message;
}

export const isAbort = e => e?.name === 'AbortError';
