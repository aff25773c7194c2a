// The package's errors (index.d.ts's `M3Error` and `ErrorKind`): how they are made, and what of
// them crosses from the model's worker to the page. Callers decide on `kind`, never on messages.

/** An error of `kind` (index.d.ts's `ErrorKind`) carrying `fields`, some of `ERROR_FIELDS`. */
export function kindError(kind, message, fields = {}, Type = Error) {
  return Object.assign(new Type(message), { kind, ...fields });
}

/** What an error of the package carries besides its name and message (index.d.ts's `M3Error`):
 *  all of it crosses from the model's worker to the page, so a caller decides on these, never on
 *  the message. */
export const ERROR_FIELDS = ['kind', 'status', 'url', 'missing'];

export function abortError(message = 'The operation was aborted.') {
  return new DOMException(message, 'AbortError');
}

/** What every call rejects with once the wasm instance has died (a panic, a trap, out of memory):
 *  `kind` 'crashed'; loading the model again is the way out. */
export function crashError(detail) {
  return kindError('crashed', /^the model crashed/.test(detail) ? detail : `the model crashed (${detail}); load it again`);
}
