// Lowering an origin's storage quota in headless Chromium (DevTools' Storage.overrideQuotaForOrigin)
// so that a test can fill it: one owner for how long a lowered quota takes to hold.
import assert from 'node:assert/strict';

/** Chromium's storage backends keep the space a bucket was last allotted for up to 30 s before
 *  they ask the quota manager again (BucketContext::kBucketSpaceCacheTimeLimit): a lowered quota
 *  holds for writes this long after it was set. */
export const QUOTA_HOLDS_AFTER_MS = 31_000;

/** Sets `origin`'s quota `extra` bytes above what it uses now; returns when it was set. What it
 *  uses may still count caches deleted earlier in the same context (freed once nothing holds
 *  them): a test that must fill its quota exactly runs in a context of its own. */
export async function quotaAbove(page, cdp, origin, extra) {
  const { usage } = await page.evaluate(() => navigator.storage.estimate());
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + extra });
  assert.equal((await cdp.send('Storage.getUsageAndQuota', { origin })).overrideActive, true);
  return Date.now();
}

/** Waits until a quota lowered at `loweredAt` holds (QUOTA_HOLDS_AFTER_MS). */
export async function quotaHolds(page, loweredAt) {
  const wait = QUOTA_HOLDS_AFTER_MS - (Date.now() - loweredAt);
  console.log(`waiting ${Math.max(0, wait)} ms more for the storage backends to ask for the lowered quota`);
  if (wait > 0) await page.waitForTimeout(wait);
}
