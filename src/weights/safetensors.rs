//! The safetensors index: an 8-byte header length, a JSON header, then the raw data.

use std::collections::BTreeMap;

use super::{DType, ReadAt, TensorEntry, checked_numel, contiguous_strides};
use crate::error::{Error, Result};

#[derive(serde::Deserialize)]
struct Info {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

pub fn index(source: &dyn ReadAt, header_len: u64) -> Result<BTreeMap<String, TensorEntry>> {
    let size = source.size();
    if header_len > 100 << 20 || 8 + header_len > size {
        return Err(Error::Format(
            "neither a PyTorch zip checkpoint nor a safetensors file (bad header length)".into(),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    source.read_at(8, &mut header)?;
    let json: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| Error::Format(format!("safetensors header is not valid JSON: {e}")))?;
    let data_start = 8 + header_len;
    let mut entries = BTreeMap::new();
    for (name, value) in json {
        if name == "__metadata__" {
            continue;
        }
        let info: Info =
            serde_json::from_value(value).map_err(|e| Error::Format(format!("safetensors entry {name}: {e}")))?;
        let dtype = match info.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "I8" => DType::I8,
            other => DType::Other(other.to_string()),
        };
        let [start, end] = info.data_offsets;
        if end < start || data_start.checked_add(end).is_none_or(|e| e > size) {
            return Err(Error::Format(format!(
                "safetensors tensor {name} lies past the end of the file (file truncated?)"
            )));
        }
        let bytes = checked_numel(&info.shape).and_then(|n| n.checked_mul(dtype.size().unwrap_or(1)));
        if dtype.size().is_some() && bytes.is_none_or(|b| b as u64 != end - start) {
            return Err(Error::Format(format!(
                "safetensors tensor {name}: shape {:?} does not match its {} bytes",
                info.shape,
                end - start
            )));
        }
        let strides = contiguous_strides(&info.shape)
            .ok_or_else(|| Error::Format(format!("safetensors tensor {name}: shape {:?} is too large", info.shape)))?;
        entries.insert(
            name,
            TensorEntry { strides, dtype, shape: info.shape, base: data_start + start, storage_bytes: end - start },
        );
    }
    Ok(entries)
}
