// Privacy: count the page's network requests after the model is loaded, and say so in the header.
import { state } from './state.js';
import { $ } from './ui.js';

export function watchNetwork() {
  if (typeof PerformanceObserver === 'undefined') return;
  new PerformanceObserver(list => {
    if (state.loadedAt == null) return;
    for (const e of list.getEntries()) {
      if (e.startTime >= state.loadedAt && !e.name.startsWith('blob:') && !e.name.startsWith('data:')) state.requestsAfterLoad.push(e.name);
    }
    renderPrivacy();
  }).observe({ type: 'resource', buffered: false });
}

export function renderPrivacy() {
  const box = $('privacy'), text = $('privacy-text');
  if (state.loadedAt == null) {
    box.className = 'privacy';
    text.textContent = 'Nothing is uploaded. The page only talks to the model host.';
    return;
  }
  const n = state.requestsAfterLoad.length;
  box.className = n ? 'privacy bad' : 'privacy ok';
  text.textContent = n
    ? `${n} network request${n > 1 ? 's' : ''} since the model loaded: ${state.requestsAfterLoad.slice(-3).join(', ')}`
    : 'Offline from here on: 0 network requests since the model loaded. Your text stays on this device.';
}
