//! The XLM-R tokenizer, built from `tokenizer.json` bytes (no filesystem, so it works in wasm).

use crate::error::{Error, Result};

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

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn from_bytes(json: &[u8]) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json could not be read: {e}")))?;
        // Truncation and padding are this crate's job (so the ids match HF's exactly).
        inner
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        inner.with_padding(None);
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

    /// Tokenizes `text` with `<s>`/`</s>`; longer than `max_length` tokens, the text is cut and
    /// `</s>` stays last (as `tokenizer(text, truncation=True, max_length=...)` does).
    pub fn encode(&self, text: &str, max_length: usize) -> Result<Tokens> {
        if max_length < 2 {
            return Err(Error::Input(format!("max_length must be at least 2 (got {max_length})")));
        }
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::Tokenizer(format!("could not tokenize text: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        let mut offsets = enc.get_offsets().to_vec();
        if ids.first() != Some(&BOS_ID) || ids.last() != Some(&EOS_ID) {
            return Err(Error::Tokenizer("tokenizer.json does not add <s> ... </s> around texts".into()));
        }
        if ids.len() > max_length {
            ids.truncate(max_length - 1);
            offsets.truncate(max_length - 1);
            ids.push(EOS_ID);
            offsets.push((0, 0));
        }
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
