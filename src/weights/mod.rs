//! Reading tensors from the files BAAI publishes: `pytorch_model.bin`, `colbert_linear.pt`,
//! `sparse_linear.pt` (PyTorch zip + pickle) and `model.safetensors`. Everything reads through
//! [`ReadAt`], so a checkpoint is parsed from an in-memory buffer, a file on disk or (in the
//! browser) a `Blob`, and tensors are materialised one at a time: loading never holds a second
//! copy of the whole file.

pub(crate) mod pickle;
mod safetensors;
mod zip;

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Random access to the bytes of one file.
pub trait ReadAt {
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let start = usize::try_from(offset).map_err(|_| Error::Format("offset out of range".into()))?;
        let end = start
            .checked_add(buf.len())
            .filter(|&e| e <= self.len())
            .ok_or_else(|| Error::Format(format!("read past the end of the file (byte {start} of {})", self.len())))?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.as_slice().read_at(offset, buf)
    }
}

#[cfg(unix)]
impl ReadAt for std::fs::File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.read_exact_at(buf, offset).map_err(|e| {
            Error::Format(format!("could not read {} bytes at {offset}: {e} (file truncated?)", buf.len()))
        })
    }
}

/// Element type of a stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    BF16,
    /// Symmetric int8 with one f32 scale per row (first dimension) in the tensor
    /// `<name>` + [`SCALE_SUFFIX`]: value = q * scale (packs written by `m3 convert --dtype int8`).
    I8,
    /// A type this crate does not convert (e.g. the int64 `position_ids` buffer).
    Other(String),
}

impl DType {
    pub(crate) fn size(&self) -> Option<usize> {
        match self {
            DType::F32 => Some(4),
            DType::F16 | DType::BF16 => Some(2),
            DType::I8 => Some(1),
            DType::Other(_) => None,
        }
    }
}

/// An int8 matrix as stored: value `[r, c]` = `q[r * cols + c] * scales[r]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Rows {
    pub shape: [usize; 2],
    pub q: Vec<i8>,
    pub scales: Vec<f32>,
}

/// An f16 matrix as stored: the IEEE half bit patterns, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct F16Matrix {
    pub shape: [usize; 2],
    pub bits: Vec<u16>,
}

/// The tensor holding the per-row scales of int8 tensor `name` is `name` + this.
pub const SCALE_SUFFIX: &str = ".scale";

/// A tensor in host memory, converted to f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Where a tensor's elements are in the file.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// In elements; row-major contiguous tensors have the usual strides.
    strides: Vec<usize>,
    /// Byte offset of element 0 of the tensor's storage in the file.
    base: u64,
    /// Bytes available from `base` (the storage's length): a bound for every read.
    storage_bytes: u64,
}

/// An opened checkpoint: the index of its tensors plus the file to read them from.
pub struct Checkpoint<R: ReadAt> {
    source: R,
    entries: BTreeMap<String, TensorEntry>,
    format: &'static str,
}

/// Row-major strides of `shape`; `None` when they overflow (a crafted shape).
fn contiguous_strides(shape: &[usize]) -> Option<Vec<usize>> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1].checked_mul(shape[i + 1])?;
    }
    Some(strides)
}

/// The number of elements of `shape`; `None` when it overflows.
fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Storage elements a strided tensor touches, `1 + sum((dim - 1) * stride)` (0 when empty);
/// `None` when it overflows.
fn strided_span(shape: &[usize], strides: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    shape.iter().zip(strides).try_fold(1usize, |acc, (&d, &s)| acc.checked_add((d - 1).checked_mul(s)?))
}

impl<R: ReadAt> Checkpoint<R> {
    /// Opens a PyTorch zip checkpoint or a safetensors file (told apart by their first bytes).
    pub fn open(source: R) -> Result<Self> {
        if source.size() < 8 {
            return Err(Error::Format(format!("file is only {} bytes long", source.size())));
        }
        let mut magic = [0u8; 8];
        source.read_at(0, &mut magic)?;
        let (entries, format) = if magic[..4] == *b"PK\x03\x04" {
            (Self::pytorch_index(&source)?, "pytorch")
        } else if magic[..2] == [0x80, 0x02] || magic[..2] == [0x8a, 0x0a] {
            return Err(Error::Format(
                "legacy (pre-1.6, non-zip) PyTorch checkpoint; re-save it with torch.save".into(),
            ));
        } else {
            (safetensors::index(&source, u64::from_le_bytes(magic))?, "safetensors")
        };
        Ok(Checkpoint { source, entries, format })
    }

    fn pytorch_index(source: &R) -> Result<BTreeMap<String, TensorEntry>> {
        let members = zip::read_members(source)?;
        let pkl = members
            .iter()
            .find(|m| m.name.ends_with("data.pkl") && m.name.matches('/').count() <= 1)
            .ok_or_else(|| Error::Format("zip archive has no data.pkl: not a PyTorch checkpoint".into()))?;
        let prefix = &pkl.name[..pkl.name.len() - "data.pkl".len()];
        if pkl.method != 0 || pkl.size > (1 << 30) {
            return Err(Error::Format("data.pkl is compressed or too large".into()));
        }
        let mut bytes = vec![0u8; pkl.size as usize];
        source.read_at(pkl.data_offset, &mut bytes)?;
        let by_name: BTreeMap<&str, &zip::ZipMember> = members.iter().map(|m| (m.name.as_str(), m)).collect();
        let mut entries = BTreeMap::new();
        for (name, t) in pickle::load_state_dict(&bytes)? {
            let member_name = format!("{prefix}data/{}", t.storage);
            let member = by_name.get(member_name.as_str()).ok_or_else(|| {
                Error::Format(format!("tensor {name}: storage {member_name} is missing from the archive"))
            })?;
            if member.method != 0 {
                return Err(Error::Format(format!("tensor {name}: storage is compressed")));
            }
            let elem = t.dtype.size().unwrap_or(1) as u64;
            if t.shape.len() != t.strides.len() {
                return Err(Error::Format(format!(
                    "tensor {name}: {} sizes but {} strides",
                    t.shape.len(),
                    t.strides.len()
                )));
            }
            let skip = (t.offset as u64).checked_mul(elem).filter(|&s| s <= member.size).ok_or_else(|| {
                Error::Format(format!("tensor {name}: storage offset {} is past its storage", t.offset))
            })?;
            entries.insert(
                name,
                TensorEntry {
                    dtype: t.dtype,
                    shape: t.shape,
                    strides: t.strides,
                    base: member.data_offset + skip,
                    storage_bytes: member.size - skip,
                },
            );
        }
        Ok(entries)
    }

    /// "pytorch" or "safetensors".
    pub fn format(&self) -> &'static str {
        self.format
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| k.as_str())
    }

    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.entries.get(name)
    }

    /// Reads one tensor and converts it to f32.
    pub fn read(&self, name: &str) -> Result<HostTensor> {
        let e = self.lookup(name)?;
        let too_large =
            || Error::Format(format!("tensor {name}: shape {:?} / strides {:?} overflow", e.shape, e.strides));
        let numel = checked_numel(&e.shape).ok_or_else(too_large)?;
        if numel == 0 {
            return Ok(HostTensor { shape: e.shape.clone(), data: Vec::new() });
        }
        // Span of storage elements the tensor touches (covers any strided layout); read_elements
        // checks it against the storage before allocating.
        let span = strided_span(&e.shape, &e.strides).ok_or_else(too_large)?;
        if numel > span {
            // Only overlapping strides (0 among them) reach more elements than they span: a few
            // stored bytes could stand for terabytes. No checkpoint of this model has such a view.
            return Err(Error::Format(format!(
                "tensor {name}: {numel} elements from {span} stored ones (overlapping strides {:?})",
                e.strides
            )));
        }
        let values = self.read_elements(name, e, 0, span)?;
        let mut data = if Some(&e.strides) == contiguous_strides(&e.shape).as_ref() {
            values
        } else {
            gather_strided(&values, &e.shape, &e.strides)
        };
        if e.dtype == DType::I8 {
            self.dequantize(name, e, 0, &mut data)?;
        }
        Ok(HostTensor { shape: e.shape.clone(), data })
    }

    /// Reads rows `start..start + count` (along the first dimension) of a row-major tensor,
    /// without reading the rest: the 1 GB word-embedding table is loaded in pieces.
    pub fn read_rows(&self, name: &str, start: usize, count: usize) -> Result<HostTensor> {
        let e = self.lookup(name)?;
        let rows = *e.shape.first().unwrap_or(&0);
        if start.checked_add(count).is_none_or(|end| end > rows) {
            return Err(Error::Weights(format!("tensor {name}: rows {start}.. (+{count}) of {rows} requested")));
        }
        let row = checked_numel(&e.shape[1.min(e.shape.len())..])
            .ok_or_else(|| Error::Format(format!("tensor {name}: shape {:?} overflows", e.shape)))?;
        let mut shape = e.shape.clone();
        if let Some(first) = shape.first_mut() {
            *first = count;
        }
        let data = if Some(&e.strides) == contiguous_strides(&e.shape).as_ref() {
            // start + count <= rows and rows * row elements exist: no overflow here.
            let mut data = self.read_elements(name, e, start * row, count * row)?;
            if e.dtype == DType::I8 {
                self.dequantize(name, e, start, &mut data)?;
            }
            data
        } else {
            self.read(name)?.data[start * row..(start + count) * row].to_vec()
        };
        Ok(HostTensor { shape, data })
    }

    /// The per-row scales `first..first + n` of int8 tensor `name` (`e`), from `name` +
    /// [`SCALE_SUFFIX`]: f32 or f16, shape `[rows]`, finite.
    fn scales(&self, name: &str, e: &TensorEntry, first: usize, n: usize) -> Result<Vec<f32>> {
        let rows = *e.shape.first().unwrap_or(&1);
        let scale_name = format!("{name}{SCALE_SUFFIX}");
        let s = self
            .entries
            .get(&scale_name)
            .ok_or_else(|| Error::Format(format!("int8 tensor {name} has no {scale_name} (its per-row scales)")))?;
        if s.shape != [rows] || !matches!(s.dtype, DType::F32 | DType::F16) {
            return Err(Error::Format(format!(
                "{scale_name} is {:?} {:?}, expected f32 or f16 [{rows}] (one scale per row of {name})",
                s.dtype, s.shape
            )));
        }
        let scales = self.read_elements(&scale_name, s, first, n)?;
        if let Some(bad) = scales.iter().find(|v| !v.is_finite()) {
            return Err(Error::Format(format!("{scale_name} holds {bad}: scales must be finite")));
        }
        Ok(scales)
    }

    /// Multiplies int8 values `data` (rows `first..` of tensor `name`, row-major) by their rows'
    /// scales.
    fn dequantize(&self, name: &str, e: &TensorEntry, first: usize, data: &mut [f32]) -> Result<()> {
        let rows = *e.shape.first().unwrap_or(&1);
        let row = checked_numel(&e.shape).unwrap_or(0).checked_div(rows).unwrap_or(0);
        let n = data.len().checked_div(row).unwrap_or(0);
        let scales = self.scales(name, e, first, n)?;
        for (values, scale) in data.chunks_mut(row.max(1)).zip(&scales) {
            values.iter_mut().for_each(|v| *v *= scale);
        }
        Ok(())
    }

    /// Tensor `name` as stored, when it is a contiguous 2-D tensor of `dtype`: its shape and stored
    /// elements (`E` of the dtype's size, little-endian). `None` for another dtype or layout.
    fn stored_matrix<E: bytemuck::Pod>(&self, name: &str, dtype: DType) -> Result<Option<([usize; 2], Vec<E>)>> {
        let e = self.lookup(name)?;
        if e.dtype != dtype || e.shape.len() != 2 || Some(&e.strides) != contiguous_strides(&e.shape).as_ref() {
            return Ok(None);
        }
        let (rows, cols) = (e.shape[0], e.shape[1]);
        let bytes = rows.checked_mul(cols).and_then(|n| n.checked_mul(size_of::<E>()));
        let Some(bytes) = bytes.filter(|&b| b as u64 <= e.storage_bytes) else {
            return Err(Error::Format(format!(
                "tensor {name}: shape {:?} needs more than its {} stored bytes (file truncated or corrupt)",
                e.shape, e.storage_bytes
            )));
        };
        let mut values = vec![E::zeroed(); bytes / size_of::<E>()];
        self.source.read_at(e.base, bytemuck::cast_slice_mut(&mut values))?;
        Ok(Some(([rows, cols], values)))
    }

    /// Tensor `name` as stored, when it is a contiguous f16 matrix: the f16 bit patterns.
    pub fn read_f16(&self, name: &str) -> Result<Option<F16Matrix>> {
        let Some((shape, mut bits)) = self.stored_matrix::<u16>(name, DType::F16)? else { return Ok(None) };
        if cfg!(target_endian = "big") {
            bits.iter_mut().for_each(|b| *b = u16::from_le(*b));
        }
        Ok(Some(F16Matrix { shape, bits }))
    }

    /// Tensor `name` as stored, when it is a contiguous int8 matrix with per-row scales (an int8
    /// pack's linear weights and word embeddings): the model keeps these compact. `None` for any
    /// other dtype or layout (read those with [`Checkpoint::read`]).
    pub fn read_int8(&self, name: &str) -> Result<Option<Int8Rows>> {
        let Some((shape, q)) = self.stored_matrix::<i8>(name, DType::I8)? else { return Ok(None) };
        let scales = self.scales(name, self.lookup(name)?, 0, shape[0])?;
        Ok(Some(Int8Rows { shape, q, scales }))
    }

    fn lookup(&self, name: &str) -> Result<&TensorEntry> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| Error::Weights(format!("tensor {name} is missing from the checkpoint")))?;
        if e.dtype.size().is_none() {
            return Err(Error::Weights(format!("tensor {name} has unsupported type {:?}", e.dtype)));
        }
        Ok(e)
    }

    /// Storage elements `first..first + count` of `e`, converted to f32.
    fn read_elements(&self, name: &str, e: &TensorEntry, first: usize, count: usize) -> Result<Vec<f32>> {
        let elem = e.dtype.size().unwrap_or(4) as u64;
        let offset = (first as u64).checked_mul(elem);
        let bytes_needed = offset.and_then(|o| o.checked_add((count as u64).checked_mul(elem)?));
        let (Some(offset), Some(bytes_needed)) = (offset, bytes_needed) else {
            return Err(Error::Format(format!("tensor {name}: element range overflows")));
        };
        if bytes_needed > e.storage_bytes {
            return Err(Error::Format(format!(
                "tensor {name} needs {bytes_needed} bytes but its storage holds {} (file truncated or corrupt)",
                e.storage_bytes
            )));
        }
        let elem = elem as usize;
        if e.dtype == DType::F32 && cfg!(target_endian = "little") {
            // Straight into the f32 buffer: no second copy of the data.
            let mut values = vec![0f32; count];
            self.source.read_at(e.base + offset, bytemuck::cast_slice_mut(&mut values))?;
            Ok(values)
        } else {
            let mut raw = vec![0u8; count * elem];
            self.source.read_at(e.base + offset, &mut raw)?;
            Ok(decode(&raw, &e.dtype))
        }
    }
}

/// One IEEE half (its bits) as f32, exactly (NaNs stay NaNs): the host's one f16 -> f32 rule.
/// Branch-free, so that a loop of it vectorizes (SIMD128 in wasm, where `half` converts one value
/// at a time through branches: 3-4x slower). The CPU backend widens every f16 weight matrix with
/// it on each forward pass.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    const EXP: u32 = 0x7c00 << 13; // a half's exponent field, moved to an f32's
    let h = h as u32;
    let o = (h & 0x7fff) << 13; // exponent and mantissa in an f32's places
    let normal = o + ((127 - 15) << 23); // exponent rebased: exact for normal halves
    let inf_nan = normal + ((128 - 16) << 23); // exponent all ones, mantissa (NaN payload) kept
    // A subnormal half, m * 2^-24: (1 + m/1024) * 2^-14 less 2^-14, both normal f32s, so exact.
    let subnormal = (f32::from_bits(normal + (1 << 23)) - f32::from_bits(113 << 23)).to_bits();
    let bits = match o & EXP {
        EXP => inf_nan,
        0 => subnormal,
        _ => normal,
    };
    f32::from_bits(bits | ((h & 0x8000) << 16))
}

pub(crate) fn decode(raw: &[u8], dtype: &DType) -> Vec<f32> {
    match dtype {
        DType::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        DType::F16 => raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        DType::BF16 => raw.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        DType::I8 => raw.iter().map(|&b| b as i8 as f32).collect(),
        DType::Other(_) => Vec::new(),
    }
}

fn gather_strided(values: &[f32], shape: &[usize], strides: &[usize]) -> Vec<f32> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..numel {
        let off: usize = idx.iter().zip(strides).map(|(i, s)| i * s).sum();
        out.push(values[off]);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// A source of named f32 tensors for building the model: a checkpoint, or several of them
/// (the encoder plus the two head files).
pub trait TensorSource {
    /// The tensor called `name` (a key as in the BAAI checkpoint), or an error naming it.
    fn tensor(&self, name: &str) -> Result<HostTensor>;
    /// The shape of tensor `name`, without reading it.
    fn shape(&self, name: &str) -> Result<Vec<usize>>;
    /// Rows `start..start + count` along the first dimension of tensor `name`.
    fn rows(&self, name: &str, start: usize, count: usize) -> Result<HostTensor>;
    /// Tensor `name` as stored, if it is an int8 matrix with per-row scales (else `None`).
    fn int8(&self, name: &str) -> Result<Option<Int8Rows>>;
    /// Tensor `name` as stored, if it is an f16 matrix (else `None`).
    fn f16(&self, name: &str) -> Result<Option<F16Matrix>>;
}

impl<R: ReadAt> Checkpoint<R> {
    /// `name`, or `name` under the prefix of a wrapping model ("roberta.", ...).
    fn key<'a>(&self, name: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.entries.contains_key(name) {
            for prefix in ["roberta.", "model.", "bert."] {
                let key = format!("{prefix}{name}");
                if self.entries.contains_key(&key) {
                    return key.into();
                }
            }
        }
        name.into()
    }
}

impl<R: ReadAt> TensorSource for Checkpoint<R> {
    fn tensor(&self, name: &str) -> Result<HostTensor> {
        self.read(&self.key(name))
    }
    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.lookup(&self.key(name))?.shape.clone())
    }
    fn rows(&self, name: &str, start: usize, count: usize) -> Result<HostTensor> {
        self.read_rows(&self.key(name), start, count)
    }
    fn int8(&self, name: &str) -> Result<Option<Int8Rows>> {
        self.read_int8(&self.key(name))
    }
    fn f16(&self, name: &str) -> Result<Option<F16Matrix>> {
        self.read_f16(&self.key(name))
    }
}

/// Checks that a tensor has the shape the config asks for; the error names both shapes.
pub fn expect_shape(name: &str, actual: &[usize], expected: &[usize]) -> Result<()> {
    if actual != expected {
        return Err(Error::Weights(format!(
            "tensor {name} has shape {actual:?}, expected {expected:?} (wrong checkpoint for this config.json?)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Checkpoints written here byte by byte, as `torch.save` and safetensors lay them out.
    use super::*;

    #[test]
    fn f16_to_f32_is_exact_for_every_half() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = f16_to_f32(h);
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}: {got} for NaN");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}: {got:e} for {want:e}");
            }
        }
    }

    /// One tensor of a hand-made `torch.save` archive.
    struct T<'a> {
        name: &'a str,
        storage: &'a str, // FloatStorage, HalfStorage, BFloat16Storage, LongStorage
        offset: usize,
        shape: &'a [usize],
        strides: &'a [usize],
        bytes: Vec<u8>,
    }

    fn unicode(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    }

    fn ints(p: &mut Vec<u8>, xs: &[usize]) {
        p.push(b'(');
        for &x in xs {
            p.push(b'M');
            p.extend((x as u16).to_le_bytes());
        }
        p.push(b't');
    }

    /// `data.pkl` of a state dict, with the opcodes torch's pickler writes (protocol 2).
    fn state_dict_pickle(tensors: &[T]) -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\n)R");
        for (i, t) in tensors.iter().enumerate() {
            unicode(&mut p, t.name);
            p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            p.push(b'(');
            unicode(&mut p, "storage");
            p.extend(format!("ctorch\n{}\n", t.storage).as_bytes());
            unicode(&mut p, &i.to_string());
            unicode(&mut p, "cpu");
            p.push(b'M');
            p.extend((t.bytes.len() as u16).to_le_bytes());
            p.extend(b"tQ");
            p.push(b'M');
            p.extend((t.offset as u16).to_le_bytes());
            ints(&mut p, t.shape);
            ints(&mut p, t.strides);
            p.push(0x89); // False
            p.extend(b"ccollections\nOrderedDict\n)R");
            p.extend(b"tRs");
        }
        p.push(b'.');
        p
    }

    /// A zip archive of stored members; with `zip64`, sizes and offsets in the central directory
    /// go through zip64 extra fields and a zip64 end record.
    fn zip(members: &[(String, Vec<u8>)], zip64: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in members {
            let local = out.len() as u32;
            out.extend(0x0403_4b50u32.to_le_bytes());
            out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method 0, time, date, crc
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(name.as_bytes());
            out.extend(data);
            central.extend(0x0201_4b50u32.to_le_bytes());
            central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            let (size, offset) = if zip64 { (u32::MAX, u32::MAX) } else { (data.len() as u32, local) };
            central.extend(size.to_le_bytes());
            central.extend(size.to_le_bytes());
            central.extend((name.len() as u16).to_le_bytes());
            central.extend((if zip64 { 28u16 } else { 0 }).to_le_bytes());
            central.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // comment, disk, attributes
            central.extend(offset.to_le_bytes());
            central.extend(name.as_bytes());
            if zip64 {
                central.extend(1u16.to_le_bytes());
                central.extend(24u16.to_le_bytes());
                central.extend((data.len() as u64).to_le_bytes()); // uncompressed
                central.extend((data.len() as u64).to_le_bytes()); // compressed
                central.extend((local as u64).to_le_bytes());
            }
        }
        let cd_offset = out.len();
        out.extend(&central);
        if zip64 {
            let rec = out.len() as u64;
            out.extend(0x0606_4b50u32.to_le_bytes());
            out.extend(44u64.to_le_bytes());
            out.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend((members.len() as u64).to_le_bytes());
            out.extend((members.len() as u64).to_le_bytes());
            out.extend((central.len() as u64).to_le_bytes());
            out.extend((cd_offset as u64).to_le_bytes());
            out.extend(0x0706_4b50u32.to_le_bytes());
            out.extend(0u32.to_le_bytes());
            out.extend(rec.to_le_bytes());
            out.extend(1u32.to_le_bytes());
        }
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0, 0, 0, 0]);
        let count = if zip64 { u16::MAX } else { members.len() as u16 };
        out.extend(count.to_le_bytes());
        out.extend(count.to_le_bytes());
        out.extend((central.len() as u32).to_le_bytes());
        out.extend((if zip64 { u32::MAX } else { cd_offset as u32 }).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    fn torch_file(tensors: &[T], zip64: bool) -> Vec<u8> {
        let mut members = vec![("archive/data.pkl".to_string(), state_dict_pickle(tensors))];
        for (i, t) in tensors.iter().enumerate() {
            members.push((format!("archive/data/{i}"), t.bytes.clone()));
        }
        members.push(("archive/version".to_string(), b"3\n".to_vec()));
        zip(&members, zip64)
    }

    fn f32_bytes(xs: &[f32]) -> Vec<u8> {
        xs.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn sample() -> Vec<T<'static>> {
        vec![
            // Row-major [2, 3], from element 1 of its storage.
            T {
                name: "a",
                storage: "FloatStorage",
                offset: 1,
                shape: &[2, 3],
                strides: &[3, 1],
                bytes: f32_bytes(&[9., 0., 1., 2., 3., 4., 5.]),
            },
            // [3, 2] stored transposed: storage is the [2, 3] matrix 0..6 row-major.
            T {
                name: "t",
                storage: "FloatStorage",
                offset: 0,
                shape: &[3, 2],
                strides: &[1, 3],
                bytes: f32_bytes(&[0., 1., 2., 3., 4., 5.]),
            },
            T {
                name: "h",
                storage: "HalfStorage",
                offset: 0,
                shape: &[2],
                strides: &[1],
                bytes: [1.5f32, -2.0].iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
            },
            T {
                name: "b",
                storage: "BFloat16Storage",
                offset: 0,
                shape: &[2],
                strides: &[1],
                bytes: [0.5f32, 3.0].iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
            },
            T {
                name: "ids",
                storage: "LongStorage",
                offset: 0,
                shape: &[1],
                strides: &[1],
                bytes: 7u64.to_le_bytes().to_vec(),
            },
        ]
    }

    #[test]
    fn pytorch_zip_with_offsets_strides_f16_and_bf16() {
        for zip64 in [false, true] {
            let ck = Checkpoint::open(torch_file(&sample(), zip64)).unwrap();
            assert_eq!(ck.format(), "pytorch");
            let a = ck.read("a").unwrap();
            assert_eq!((a.shape.as_slice(), a.data.as_slice()), (&[2, 3][..], &[0., 1., 2., 3., 4., 5.][..]));
            assert_eq!(ck.read_rows("a", 1, 1).unwrap().data, [3., 4., 5.]);
            let t = ck.read("t").unwrap();
            assert_eq!(t.data, [0., 3., 1., 4., 2., 5.], "zip64 {zip64}: the transpose, gathered row-major");
            assert_eq!(ck.read_rows("t", 2, 1).unwrap().data, [2., 5.]);
            assert_eq!(ck.read("h").unwrap().data, [1.5, -2.0]);
            assert_eq!(ck.read("b").unwrap().data, [0.5, 3.0]);
            assert!(matches!(ck.read("ids"), Err(Error::Weights(_))), "int64 is refused by name, not misread");
            assert!(matches!(ck.read("nope"), Err(Error::Weights(_))));
            assert!(ck.read_rows("a", 1, 2).is_err());
        }
    }

    #[test]
    fn a_shape_or_offset_past_the_storage_is_an_error() {
        let mut ts = sample();
        ts[0].shape = &[3, 3]; // 9 elements from offset 1 of a 7-element storage
        let ck = Checkpoint::open(torch_file(&ts, false)).unwrap();
        assert!(matches!(ck.read("a"), Err(Error::Format(_))));
        let mut ts = sample();
        ts[1].strides = &[1, 4]; // reaches element 2 + 4 = 6 of 6
        let ck = Checkpoint::open(torch_file(&ts, false)).unwrap();
        assert!(matches!(ck.read("t"), Err(Error::Format(_))));
    }

    #[test]
    fn broken_archives_and_pickles_are_errors() {
        let good = torch_file(&sample(), false);
        for cut in [good.len() - 1, good.len() / 2, 30, 9] {
            assert!(Checkpoint::open(good[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        let mut pkl = state_dict_pickle(&sample());
        pkl.truncate(pkl.len() / 2);
        let file = zip(&[("archive/data.pkl".into(), pkl)], false);
        assert!(matches!(Checkpoint::open(file), Err(Error::Format(_))));
        let file = zip(&[("archive/data.pkl".into(), vec![0x80, 2, 0xff, b'.'])], false);
        let err = Checkpoint::open(file).err().unwrap().to_string();
        assert!(err.contains("unsupported opcode 0xff"), "{err}");
        let file = zip(&[("archive/other".into(), vec![1, 2, 3])], false);
        assert!(Checkpoint::open(file).err().unwrap().to_string().contains("no data.pkl"));
        // A storage the pickle names but the archive lacks.
        let mut members = vec![("archive/data.pkl".to_string(), state_dict_pickle(&sample()))];
        members.push(("archive/data/0".into(), vec![0; 28]));
        let err = Checkpoint::open(zip(&members, false)).err().unwrap().to_string();
        assert!(err.contains("missing from the archive"), "{err}");
    }

    #[test]
    fn crafted_pickles_fail_fast_and_small() {
        use pickle::load_state_dict;
        // 40 DUPs of a list: handles, not copies (a deep-copying reader needs 2^40 elements).
        let mut p = vec![0x80, 2, b'}', b']'];
        p.extend([b'2'; 40]);
        p.extend([b'0'; 40]);
        p.extend(b"0.");
        assert!(load_state_dict(&p).unwrap().is_empty());
        // A million nested 1-tuples: no recursion, no stack overflow on drop.
        let mut p = vec![0x80, 2, b'}', b'N'];
        p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        p.extend(b"0.");
        assert!(load_state_dict(&p).unwrap().is_empty());
        // Globals outside the closed list are refused by name.
        let err = load_state_dict(b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00lsR.").unwrap_err().to_string();
        assert!(err.contains("posix.system"), "{err}");
        let err = load_state_dict(b"\x80\x02cbuiltins\neval\n.").unwrap_err().to_string();
        assert!(err.contains("builtins.eval"), "{err}");
        // Not a dict at the top; an empty pickle; a string longer than the pickle.
        assert!(load_state_dict(b"\x80\x02].").is_err());
        assert!(load_state_dict(b"").is_err());
        assert!(load_state_dict(b"\x80\x02X\xff\xff\xff\xff.").is_err());
    }

    #[test]
    fn crafted_sizes_are_errors_not_allocations() {
        // safetensors: a 2^62-element shape over no data, and shapes whose products overflow.
        for shape in ["[4611686018427387904]", "[4294967296, 4294967296, 16]", "[0, 18446744073709551615]"] {
            let header = format!(r#"{{"w":{{"dtype":"F32","shape":{shape},"data_offsets":[0,0]}}}}"#);
            let r = Checkpoint::open(safetensors(&header, &[])).and_then(|c| c.read("w").map(|t| t.data.len()));
            assert!(r.is_err() || r == Ok(0), "{shape}: {r:?}");
        }
        // pickle: huge strides over a small storage; stride 0 over a huge shape; an offset past it.
        let mut ts = sample();
        ts[0].strides = &[65535, 65535];
        assert!(Checkpoint::open(torch_file(&ts, false)).and_then(|c| c.read("a")).is_err());
        let mut ts = sample();
        ts[0].shape = &[65535, 65535];
        ts[0].strides = &[0, 0];
        assert!(Checkpoint::open(torch_file(&ts, false)).and_then(|c| c.read("a")).is_err());
        let mut ts = sample();
        ts[0].offset = 1000;
        assert!(Checkpoint::open(torch_file(&ts, false)).is_err());
        // zip: a zip64 record claiming 2^60 entries in a directory of a few bytes.
        let mut file = torch_file(&sample(), true);
        let rec = file.len() - 22 - 20 - 56;
        file[rec + 32..rec + 40].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let err = Checkpoint::open(file).err().unwrap().to_string();
        assert!(err.contains("entries claimed"), "{err}");
        // A zip64 extra field that claims more bytes than the entry's extra area: read within it.
        let mut file = torch_file(&sample(), true);
        let at = file.windows(4).position(|w| w == [1, 0, 24, 0]).unwrap();
        file[at + 2] = 0xff;
        assert_eq!(Checkpoint::open(file).unwrap().read("h").unwrap().data, [1.5, -2.0]);
    }

    fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn safetensors_f32_f16_bf16_and_bad_ranges() {
        let mut data = f32_bytes(&[1., 2., 3., 4.]);
        data.extend(half::f16::from_f32(0.25).to_le_bytes());
        data.extend(half::bf16::from_f32(-8.0).to_le_bytes());
        let header = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"h":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[18,20]}}"#;
        let ck = Checkpoint::open(safetensors(header, &data)).unwrap();
        assert_eq!(ck.format(), "safetensors");
        assert_eq!(ck.read("w").unwrap().data, [1., 2., 3., 4.]);
        assert_eq!(ck.read_rows("w", 1, 1).unwrap().data, [3., 4.]);
        assert_eq!(ck.read("h").unwrap().data, [0.25]);
        assert_eq!(ck.read("b").unwrap().data, [-8.0]);
        // Offsets past the data, and a shape that needs more bytes than its range.
        let bad = r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,64]}}"#;
        assert!(Checkpoint::open(safetensors(bad, &data)).and_then(|c| c.read("w")).is_err());
        let bad = r#"{"w":{"dtype":"F32","shape":[4,4],"data_offsets":[0,16]}}"#;
        assert!(Checkpoint::open(safetensors(bad, &data)).and_then(|c| c.read("w")).is_err());
        assert!(Checkpoint::open(safetensors("{not json", &data)).is_err());
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend([0; 16]);
        assert!(Checkpoint::open(huge).is_err());
    }
}
