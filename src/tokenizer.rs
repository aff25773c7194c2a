//! The XLM-R tokenizer, built from `tokenizer.json` bytes (no filesystem, so it works in wasm).

use crate::error::{Error, Result};

mod check;

/// Token ids of the specials BGE-M3 relies on (XLM-R numbering).
pub const BOS_ID: u32 = 0; // <s>
pub const PAD_ID: u32 = 1; // <pad>
pub const EOS_ID: u32 = 2; // </s>
pub const UNK_ID: u32 = 3; // <unk>

/// One tokenized text: ids with `<s>` first and `</s>` last, and for each token the byte span
/// `[start, end)` of the original text it came from (`(0, 0)` for the specials).
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub offsets: Vec<(usize, usize)>,
}

impl Tokens {
    /// Tokens between `<s>` and `</s>`.
    pub fn content_len(&self) -> usize {
        self.ids.len().saturating_sub(2)
    }
}

/// Byte offsets of a UTF-8 text mapped to another unit of the same text: UTF-16 code units (the
/// unit of JS strings) or Unicode scalar values (the unit of Python's `str`). An offset inside a
/// character maps to that character's start.
pub struct OffsetMap {
    at: Vec<u32>,
}

impl OffsetMap {
    pub fn utf16(text: &str) -> Self {
        Self::new(text, char::len_utf16)
    }

    pub fn chars(text: &str) -> Self {
        Self::new(text, |_| 1)
    }

    fn new(text: &str, units: fn(char) -> usize) -> Self {
        let mut at = vec![0u32; text.len() + 1];
        let mut u = 0u32;
        let mut chars = text.char_indices().peekable();
        for (b, slot) in at.iter_mut().enumerate() {
            if let Some(&(start, ch)) = chars.peek() {
                if start == b {
                    *slot = u;
                    u += units(ch) as u32;
                    chars.next();
                    continue;
                }
                // Inside a character: its start.
                *slot = u - units(text[..start].chars().next_back().unwrap_or(ch)) as u32;
            } else {
                *slot = u;
            }
        }
        OffsetMap { at }
    }

    /// The offset in the target unit of byte offset `byte` (clamped to the text's end).
    pub fn map(&self, byte: usize) -> u32 {
        self.at[byte.min(self.at.len() - 1)]
    }
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn from_bytes(json: &[u8]) -> Result<Self> {
        check::check(json)?;
        let mut inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json could not be read: {e}")))?;
        // Truncation and padding are this crate's job (so the ids match HF's exactly), and so are
        // the specials: XLM-R's post-processor only puts `<s>` before and `</s>` after a text, and
        // `tokenizers` trusts a file's template without checking it (a template naming a token its
        // own table lacks panics on the first encode).
        inner.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
        inner.with_padding(None);
        inner.with_post_processor(None::<tokenizers::processors::PostProcessorWrapper>);
        let tok = Tokenizer { inner };
        for (name, id) in [("<s>", BOS_ID), ("<pad>", PAD_ID), ("</s>", EOS_ID), ("<unk>", UNK_ID)] {
            if tok.inner.token_to_id(name) != Some(id) {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.json is not an XLM-R tokenizer: {name} is not id {id}"
                )));
            }
        }
        Ok(tok)
    }

    /// Tokenizes `text` with `<s>` first and `</s>` last, whole (windows and truncation are
    /// [`crate::windows`]' job).
    pub fn encode(&self, text: &str) -> Result<Tokens> {
        let enc =
            self.inner.encode(text, false).map_err(|e| Error::Tokenizer(format!("could not tokenize text: {e}")))?;
        let n = enc.get_ids().len();
        let mut ids = Vec::with_capacity(n + 2);
        let mut offsets = Vec::with_capacity(n + 2);
        ids.push(BOS_ID);
        offsets.push((0, 0));
        ids.extend_from_slice(enc.get_ids());
        offsets.extend_from_slice(enc.get_offsets());
        ids.push(EOS_ID);
        offsets.push((0, 0));
        Ok(Tokens { ids, offsets })
    }

    /// The vocabulary entry of `id` (e.g. "▁search"), for showing lexical weights.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_utf16_and_chars() {
        let text = "aé😀z"; // bytes: a 0, é 1..3, 😀 3..7, z 7, end 8
        let u = OffsetMap::utf16(text);
        assert_eq!([0, 1, 3, 7, 8].map(|b| u.map(b)), [0, 1, 2, 4, 5]);
        assert_eq!(u.map(2), 1, "inside é: its start");
        assert_eq!(u.map(5), 2, "inside the emoji: its start");
        assert_eq!(u.map(100), 5, "clamped to the end");
        let c = OffsetMap::chars(text);
        assert_eq!([0, 1, 3, 7, 8].map(|b| c.map(b)), [0, 1, 2, 3, 4]);
        assert_eq!(c.map(6), 2);
        assert_eq!(OffsetMap::utf16("").map(0), 0);
    }
}
