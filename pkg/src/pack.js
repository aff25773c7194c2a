// Packs: a model folder converted by `m3 convert --dtype f16|int8` (src/pack.rs writes them). This
// module owns what the package accepts of one: the manifest's name and shape, the storage types,
// and the closed list of file names with the role each plays in `M3.load`.
import { kindError } from './errors.js';

/** The manifest's file name (src/pack.rs: MANIFEST). */
export const MANIFEST = 'm3-pack.json';
/** The manifest's `format` and the one `version` this package reads (src/pack.rs: PACK_VERSION). */
export const PACK_FORMAT = 'bge-m3-pack';
export const PACK_VERSION = 1;
/** Storage types of packs; 'f32' is BAAI's files as they are (no pack). */
export const PACK_DTYPES = ['f16', 'int8'];
export const DTYPES = ['f32', ...PACK_DTYPES];

/** Every file a pack may list, and the role it is loaded as (the keys of `M3.load`'s object).
 *  Small files first: the order files are fetched in, so a wrong URL fails before the big one. */
export const PACK_FILES = {
  'config.json': 'config',
  'tokenizer.json': 'tokenizer',
  'colbert_linear.safetensors': 'colbert',
  'sparse_linear.safetensors': 'sparse',
  'model.safetensors': 'encoder',
};

/** What each pack file is made from when the package converts BAAI's files itself (`load(url,
 *  { dtype })` on a base URL without m3-pack.json): the source file's name. A file of the same name
 *  is copied as it is; the others go through the wasm PackConverter (src/pack/stream.rs), which
 *  reads PyTorch checkpoints (`pytorch_model.bin`, the heads' `.pt`). */
export const PACK_SOURCES = {
  'config.json': 'config.json',
  'tokenizer.json': 'tokenizer.json',
  'colbert_linear.safetensors': 'colbert_linear.pt',
  'sparse_linear.safetensors': 'sparse_linear.pt',
  'model.safetensors': 'pytorch_model.bin',
};

/** Largest manifest read (a real one is ~1.5 KB): an untrusted file is never read whole first. */
export const MANIFEST_MAX_BYTES = 1 << 20;

function formatError(message) {
  return kindError('format', `${MANIFEST}: ${message}`);
}

/** Parses and checks a manifest's text; returns `{ dtype, files: { name: { size, sha256, role } } }`
 *  with every file of PACK_FILES present. Anything else rejects with `kind` 'format' and says what. */
export function parseManifest(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw formatError(`not JSON (${e.message})`);
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw formatError('not a JSON object');
  if (m.format !== PACK_FORMAT) throw formatError(`format is ${JSON.stringify(m.format)}, not "${PACK_FORMAT}"`);
  if (m.version !== PACK_VERSION) {
    throw formatError(`version ${JSON.stringify(m.version)} is not supported (this package reads version ${PACK_VERSION}; a newer m3 may have written it)`);
  }
  if (!PACK_DTYPES.includes(m.dtype)) throw formatError(`dtype ${JSON.stringify(m.dtype)} is not one of ${PACK_DTYPES.join(', ')}`);
  if (m.files === null || typeof m.files !== 'object' || Array.isArray(m.files)) throw formatError('"files" is not an object');
  const files = {};
  for (const [name, entry] of Object.entries(m.files)) {
    if (!Object.hasOwn(PACK_FILES, name)) {
      throw formatError(`lists an unknown file ${JSON.stringify(name)} (a pack holds ${Object.keys(PACK_FILES).join(', ')})`);
    }
    const { size, sha256 } = entry ?? {};
    if (!Number.isSafeInteger(size) || size < 0) throw formatError(`${name}: size ${JSON.stringify(size)} is not a whole number of bytes`);
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) throw formatError(`${name}: sha256 ${JSON.stringify(sha256)} is not 64 lowercase hex digits`);
    files[name] = { size, sha256, role: PACK_FILES[name] };
  }
  const missing = Object.keys(PACK_FILES).filter(n => !files[n]);
  if (missing.length) throw formatError(`does not list ${missing.join(', ')}`);
  return { dtype: m.dtype, files };
}

/** The error for a `dtype` option that differs from the pack's. */
export function dtypeMismatchError(asked, pack, where) {
  return kindError('input', `${where} is an ${pack} pack, but dtype "${asked}" was asked for (leave dtype out to take the pack as it is)`);
}
