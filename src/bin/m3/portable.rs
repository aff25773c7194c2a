// `m3 encode --format qdrant|milvus`: the package's portable export (pkg/src/index/portable.js,
// the spec; docs/portable-export.md) written natively, so that a server can index a corpus too big
// for a tab with the vectors the browser computes. One line per window: a Qdrant point (named
// vectors dense, sparse, colbert) or a Milvus row (dense, sparse), with the same ids and payload.

use bge_m3_web::Document;
use bge_m3_web::tokenizer::OffsetMap;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Milvus: most UTF-8 bytes of a VARCHAR field (`text`, `doc_id`): portable.js's MILVUS_VARCHAR_MAX.
const MILVUS_VARCHAR_MAX: usize = 65535;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Qdrant,
    Milvus,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "qdrant" => Ok(Format::Qdrant),
            "milvus" => Ok(Format::Milvus),
            other => Err(format!("--format: unknown value {other:?} (qdrant, milvus)")),
        }
    }
}

/// A document id the exports can carry (portable.js's checkDocId): a non-empty string or a safe
/// integer (|n| < 2^53). `line`: the input line's number, for messages.
pub fn doc_id(v: Option<&Value>, line: usize) -> Result<Value, String> {
    const SAFE: i64 = (1 << 53) - 1;
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(Value::String(s.clone())),
        Some(Value::String(_)) => Err(format!("line {line}: \"id\" is the empty string")),
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| (-SAFE..=SAFE).contains(&i)) => {
            Ok(Value::Number(n.clone()))
        }
        Some(_) => Err(format!("line {line}: \"id\" must be a non-empty string or an integer of at most 2^53 - 1")),
        None => Err(format!("line {line}: missing \"id\" (--format needs a document id per line)")),
    }
}

/// The point / row id of window `window` of document `id`: portable.js's pointId, a UUIDv8 made
/// of the first 16 bytes of SHA-256 of the compact JSON `[id, window]`.
pub fn point_id(id: &Value, window: usize) -> String {
    let key = serde_json::to_string(&json!([id, window])).expect("strings and integers always serialise");
    let h = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // variant 10
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The lines of one encoded document (each ending in "\n"). `colbert`: Qdrant's multivector too.
pub fn lines(
    format: Format,
    colbert: bool,
    id: &Value,
    text: &str,
    meta: Option<&Value>,
    doc: &Document,
    dim: usize,
) -> Result<String, String> {
    let utf16 = OffsetMap::utf16(text);
    let name = id.to_string();
    let mut out = String::new();
    for (k, (w, r)) in doc.windows.iter().zip(&doc.results).enumerate() {
        let where_ = || format!("document {name} window {k}");
        let dense = r.dense.as_deref().ok_or_else(|| format!("{}: no dense vector", where_()))?;
        let sparse = r.sparse.as_deref().ok_or_else(|| format!("{}: no sparse vector", where_()))?;
        let slice = &text[w.span.0..w.span.1];
        let mut payload = Map::new();
        payload.insert(
            "doc_id".into(),
            if format == Format::Milvus {
                Value::String(id.as_str().map_or_else(|| id.to_string(), str::to_string))
            } else {
                id.clone()
            },
        );
        payload.insert("window".into(), json!(k));
        payload.insert("start".into(), json!(utf16.map(w.span.0)));
        payload.insert("end".into(), json!(utf16.map(w.span.1)));
        payload.insert("token_start".into(), json!(w.token_start));
        payload.insert("token_end".into(), json!(w.token_end));
        payload.insert("text".into(), json!(slice));
        payload.insert("meta".into(), meta.cloned().unwrap_or(Value::Null));
        // Vectors as f32 in their shortest form (serde_json writes an `&[f32]` so; a `Value` would
        // hold them as f64), spliced into the line.
        let f32s = |v: &[f32]| serde_json::to_string(v).expect("finite numbers always serialise");
        let ids: Vec<u32> = sparse.iter().map(|p| p.0).collect();
        let values: Vec<f32> = sparse.iter().map(|p| p.1).collect();
        match format {
            Format::Qdrant => {
                let multi = if colbert {
                    let c = r.colbert.as_deref().ok_or_else(|| format!("{}: no ColBERT vectors", where_()))?;
                    let rows: Vec<&[f32]> = c.chunks_exact(dim).collect();
                    format!(r#","colbert":{}"#, serde_json::to_string(&rows).expect("finite numbers always serialise"))
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    r#"{{"id":"{}","vector":{{"dense":{},"sparse":{{"indices":{},"values":{}}}{multi}}},"payload":{}}}"#,
                    point_id(id, k),
                    f32s(dense),
                    serde_json::to_string(&ids).expect("integers always serialise"),
                    f32s(&values),
                    Value::Object(payload),
                ));
            }
            Format::Milvus => {
                for (what, s) in [("the document id", payload["doc_id"].as_str().unwrap_or("")), ("its text", slice)] {
                    if s.len() > MILVUS_VARCHAR_MAX {
                        return Err(format!(
                            "{}: {what} is {} UTF-8 bytes, over Milvus' VARCHAR limit of {MILVUS_VARCHAR_MAX}; use a smaller --max-length, or --format qdrant",
                            where_(),
                            s.len()
                        ));
                    }
                }
                // Milvus drops zero weights; the sparse head's weights are > 0 already.
                let pairs: Vec<String> = sparse
                    .iter()
                    .filter(|p| p.1 > 0.0)
                    .map(|&(i, v)| format!(r#""{i}":{}"#, serde_json::to_string(&v).expect("finite")))
                    .collect();
                if pairs.is_empty() {
                    return Err(format!(
                        "{}: the sparse vector has no weight above 0, and Milvus cannot store such a row; use --format qdrant",
                        where_()
                    ));
                }
                let rest = Value::Object(payload).to_string();
                out.push_str(&format!(
                    r#"{{"id":"{}","dense":{},"sparse":{{{}}},{}"#,
                    point_id(id, k),
                    f32s(dense),
                    pairs.join(","),
                    &rest[1..]
                ));
            }
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_equal_the_packages() {
        // From portable.js: node -e "import('./pkg/src/index/portable.js').then(m => console.log(m.pointId('notes/a.txt', 0), ...))"
        assert_eq!(point_id(&json!("notes/a.txt"), 0), "5eaef2e4-9d1b-873a-bcf7-3f0a3a958aa2");
        assert_eq!(point_id(&json!(17), 2), "a065d358-eb00-8d74-b570-b6eb0471799f");
        assert_eq!(point_id(&json!("é\"\n"), 3), "92b0e7fd-7eef-8761-9613-69f5399c6448");
    }
}
