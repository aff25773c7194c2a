//! `tokenizer.json` is untrusted: it is checked here before `tokenizers` parses it, for what
//! `tokenizers` does not check and then panics, hangs or over-allocates on:
//! - a `Precompiled` normalizer's `precompiled_charsmap` (SentencePiece's double-array trie + the
//!   strings it maps to): `spm_precompiled` reserves `trie_size / 4` units from the header alone
//!   and indexes the trie and the strings with file-supplied numbers, unchecked;
//! - the model must be XLM-R's kind (SentencePiece Unigram, a bounded vocabulary, `unk_id` inside
//!   it), so that what follows is the code path the checks were written for.
//!
//! What this does not cover is left to `tokenizers`' own errors (and, for an unknown panic, to the
//! crash handling of the package and the CLI).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Largest vocabulary accepted (XLM-R has 250,002 entries).
const MAX_VOCAB: usize = 1 << 22;

/// The parts of `tokenizer.json` checked here; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Shape {
    #[serde(default)]
    normalizer: Option<Value>,
    model: Model,
}

#[derive(Deserialize)]
struct Model {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    vocab: Vec<(String, f64)>,
    unk_id: Option<usize>,
}

fn bad(what: String) -> Error {
    Error::Tokenizer(format!("tokenizer.json: {what}"))
}

pub fn check(json: &[u8]) -> Result<()> {
    let shape: Shape = serde_json::from_slice(json).map_err(|e| {
        bad(format!("not a SentencePiece Unigram (XLM-R) tokenizer: {e} (needs model.vocab as [token, score] pairs)"))
    })?;
    let model = shape.model;
    if let Some(kind) = model.kind.as_deref().filter(|k| *k != "Unigram") {
        return Err(bad(format!("model.type is {kind:?}; BGE-M3 uses XLM-R's \"Unigram\" model")));
    }
    let n = model.vocab.len();
    if n == 0 || n > MAX_VOCAB {
        return Err(bad(format!("model.vocab has {n} entries (expected 1..={MAX_VOCAB})")));
    }
    match model.unk_id {
        Some(id) if id < n => {}
        Some(id) => return Err(bad(format!("model.unk_id {id} is outside the vocabulary of {n}"))),
        None => return Err(bad("model.unk_id is missing (XLM-R's is 3, <unk>)".into())),
    }
    if let Some(normalizer) = &shape.normalizer {
        check_normalizer(normalizer, "normalizer", 0)?;
    }
    Ok(())
}

/// Walks a normalizer (and the `normalizers` of a `Sequence`) for `Precompiled` charsmaps.
fn check_normalizer(n: &Value, path: &str, depth: usize) -> Result<()> {
    if depth > 16 {
        return Err(bad(format!("{path}: normalizers nested deeper than 16")));
    }
    match n.get("type").and_then(Value::as_str) {
        Some("Precompiled") => {
            let text = n.get("precompiled_charsmap").and_then(Value::as_str).unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| bad(format!("{path}.precompiled_charsmap is not base64: {e}")))?;
            check_charsmap(&bytes).map_err(|what| bad(format!("{path}.precompiled_charsmap: {what}")))
        }
        Some("Sequence") => {
            let list = n.get("normalizers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
            for (i, inner) in list.iter().enumerate() {
                check_normalizer(inner, &format!("{path}.normalizers[{i}]"), depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Checks a SentencePiece `precompiled_charsmap` as `spm_precompiled` 0.1 reads it:
/// `[trie_size: u32 LE][trie: trie_size / 4 units of u32 LE][normalized strings, '\0'-separated]`.
/// Every trie position a lookup can reach (over every byte value) is followed once, and every
/// index a lookup reads, into the trie or the strings, must be in bounds (and a char boundary).
pub(crate) fn check_charsmap(bytes: &[u8]) -> std::result::Result<(), String> {
    let header: [u8; 4] = bytes.get(..4).and_then(|h| h.try_into().ok()).ok_or("shorter than its 4-byte header")?;
    let trie_size = u32::from_le_bytes(header) as usize;
    let units = trie_size / 4;
    let rest = &bytes[4..];
    if units == 0 || units.checked_mul(4).is_none_or(|b| b > rest.len()) {
        return Err(format!("the trie claims {trie_size} bytes, {} are present", rest.len()));
    }
    let trie: Vec<u32> =
        rest[..units * 4].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let normalized = std::str::from_utf8(&rest[units * 4..]).map_err(|_| "its strings are not UTF-8")?;

    // darts-clone unit fields, as spm_precompiled decodes them.
    let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
    let label = |u: u32| u & ((1 << 31) | 0xFF);
    let has_leaf = |u: u32| (u >> 8) & 1 == 1;
    let value = |u: u32| (u & ((1 << 31) - 1)) as usize;

    let mut seen = vec![false; units];
    let mut stack = vec![offset(trie[0])];
    while let Some(pos) = stack.pop() {
        if pos >= units {
            return Err(format!("a trie offset points to unit {pos} of {units}"));
        }
        if std::mem::replace(&mut seen[pos], true) {
            continue;
        }
        for c in 1..=255usize {
            let at = pos ^ c;
            let unit = *trie.get(at).ok_or_else(|| format!("a trie lookup reads unit {at} of {units}"))?;
            if label(unit) as usize != c {
                continue;
            }
            let next = pos ^ c ^ offset(unit);
            if has_leaf(unit) {
                let leaf = *trie.get(next).ok_or_else(|| format!("a trie leaf is at unit {next} of {units}"))?;
                let start = value(leaf);
                if !normalized.is_char_boundary(start) {
                    return Err(format!("a trie value {start} is not a string start in {} bytes", normalized.len()));
                }
            }
            stack.push(next);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A one-block charsmap mapping "a" to the string at `value` of `strings`; the trie unit for
    /// 'a' carries `offset` (its leaf is at unit 97 ^ offset).
    fn charsmap(trie_size: u32, offset: u32, value: u32, strings: &[u8]) -> Vec<u8> {
        let mut trie = vec![0u32; 256];
        trie[97] = (offset << 10) | (1 << 8) | 97;
        if let Some(leaf) = trie.get_mut((97 ^ offset) as usize) {
            *leaf = value;
        }
        let mut out = trie_size.to_le_bytes().to_vec();
        out.extend(trie.iter().flat_map(|u| u.to_le_bytes()));
        out.extend_from_slice(strings);
        out
    }

    fn tokenizer_json(charsmap: &[u8], vocab: Value, unk_id: Value) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(charsmap);
        let t = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": {"type": "Sequence", "normalizers": [{"type": "Precompiled", "precompiled_charsmap": b64}]},
            "pre_tokenizer": null, "post_processor": null, "decoder": null,
            "model": {"type": "Unigram", "unk_id": unk_id, "vocab": vocab},
        });
        serde_json::to_vec(&t).unwrap()
    }

    fn vocab() -> Value {
        json!([["<unk>", 0.0], ["a", -1.0], ["x", -1.0]])
    }

    /// What `tokenizers` alone does with `json` and the text "a": Ok(tokens), Err(its error), or
    /// a panic (caught here, native tests unwind).
    fn tokenizers_alone(json: &[u8]) -> std::thread::Result<std::result::Result<Vec<String>, String>> {
        let json = json.to_vec();
        std::panic::catch_unwind(move || {
            let t = tokenizers::Tokenizer::from_bytes(&json).map_err(|e| e.to_string())?;
            let enc = t.encode("a", false).map_err(|e| e.to_string())?;
            Ok(enc.get_tokens().to_vec())
        })
    }

    #[test]
    fn a_sound_charsmap_passes_and_means_what_we_decode() {
        // 'a' -> leaf at unit 97 ^ 169 = 200 -> value 0 -> "x".
        let json = tokenizer_json(&charsmap(1024, 169, 0, b"x\0"), vocab(), json!(0));
        check(&json).unwrap();
        assert_eq!(tokenizers_alone(&json).unwrap().unwrap(), ["x"], "tokenizers reads the trie as we do");
    }

    #[test]
    fn crafted_charsmaps_are_refused_before_tokenizers_panics_on_them() {
        let cases: [(&str, Vec<u8>); 6] = [
            ("trie claims 4 GiB", charsmap(u32::MAX - 3, 169, 0, b"x\0")),
            ("trie offset out of bounds", charsmap(1024, 1000, 0, b"x\0")),
            ("leaf value past the strings", charsmap(1024, 169, 1000, b"x\0")),
            ("leaf value inside a character", charsmap(1024, 169, 1, "é\0".as_bytes())),
            ("strings not UTF-8", charsmap(1024, 169, 0, b"\xff\0")),
            ("empty", vec![]),
        ];
        let mut panicked = 0;
        for (what, map) in cases {
            let json = tokenizer_json(&map, vocab(), json!(0));
            let err = check(&json).expect_err(what).to_string();
            assert!(err.contains("precompiled_charsmap"), "{what}: {err}");
            assert!(err.contains("normalizer.normalizers[0]"), "{what}: names where: {err}");
            if !what.contains("4 GiB") {
                // (that one would make tokenizers reserve 8 GB: not run here)
                panicked += tokenizers_alone(&json).is_err() as usize;
            }
        }
        // Without the check, the out-of-bounds offset and the leaf values panic inside tokenizers.
        assert!(panicked >= 3, "only {panicked} of the crafted charsmaps panic tokenizers: are they still crafted?");
    }

    #[test]
    fn vocabularies_of_another_kind_are_refused() {
        let map = charsmap(1024, 169, 0, b"x\0");
        for (what, vocab, unk, needle) in [
            ("unk outside", vocab(), json!(3), "outside the vocabulary"),
            ("no unk", vocab(), json!(null), "unk_id is missing"),
            ("empty vocab", json!([]), json!(0), "0 entries"),
            ("not pairs", json!({"a": 1}), json!(0), "not a SentencePiece Unigram"),
        ] {
            let err = check(&tokenizer_json(&map, vocab, unk)).expect_err(what).to_string();
            assert!(err.contains(needle), "{what}: {err}");
        }
        let mut t: Value = serde_json::from_slice(&tokenizer_json(&map, vocab(), json!(0))).unwrap();
        t["model"]["type"] = json!("BPE");
        assert!(check(&serde_json::to_vec(&t).unwrap()).unwrap_err().to_string().contains("\"BPE\""));
    }

    #[test]
    fn xlm_r_tokenizer_passes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/tiny-m3/tokenizer.json");
        let Ok(json) = std::fs::read(path) else { panic!("fixture missing: {path}") };
        check(&json).unwrap();
    }
}
