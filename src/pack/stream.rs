//! A PyTorch checkpoint converted to a pack file while its bytes arrive (the browser converts
//! BAAI's f32 `pytorch_model.bin` as it downloads, so that only the compact form is ever cached).
//!
//! `torch.save` writes a zip whose members are stored (not compressed): `data.pkl` (the state
//! dict: names, shapes and storage keys) first, a few small records, one member `data/<key>` per
//! storage, keys in sorted order, more small records, then the central directory. Recent PyTorch
//! leaves the sizes out of the local headers and writes them in a data descriptor after each
//! member's data. So the converter reads the local headers in order, and a member's size comes
//! from its header, or for a tensor's storage from the plan (its elements times their size), or
//! else (`data.pkl`, the small records) from where a data descriptor follows whose size and CRC-32
//! match the bytes so far. From `data.pkl` it plans the safetensors file (the header goes out at
//! once), then converts each storage as it streams, one row (int8) or a run of elements (f16) at a
//! time, and checks each member's CRC-32. Memory: the pickle, one partial row, and the int8 scales
//! of the tensor in progress. What the stream cannot do is an error, never a guess: a checkpoint
//! whose storages are shared, strided, offset, or out of order is refused with a pointer to
//! `m3 convert`, which reads the file by offsets.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::{
    JsonMinifier, PackDtype, PackFile, Planned, TensorReport, TensorSink, hex, metadata, packed, safetensors_header,
    stored_as,
};
use crate::error::{Error, Result};
use crate::weights::DType;
use crate::weights::pickle::{PickledTensor, load_state_dict};

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
/// The largest member whose size is found from its data descriptor (`data.pkl`: BGE-M3's is
/// ~30 KB; small records; the int64 `position_ids` storage, 64 KB).
const MAX_SCANNED: usize = 64 << 20;
/// Elements converted per step for f16 (bounded memory whatever the chunk size).
const F16_RUN: usize = 1 << 16;
/// The most converted bytes held for storages that arrive before their turn (see `plan`).
const MAX_HELD: usize = 1 << 30;

/// One storage of the plan: the tensor it holds and how.
struct Slot {
    storage: String,
    dtype: DType,
    planned: Planned,
}

enum Member {
    Pickle(Vec<u8>),
    /// A tensor's storage: `slot` in the plan; `buf` the bytes not yet converted (a partial row);
    /// `early` its converted bytes while an earlier slot is still to come.
    Tensor {
        slot: usize,
        sink: TensorSink,
        elem: usize,
        unit: usize,
        buf: Vec<u8>,
        early: Vec<u8>,
    },
    Skip,
}

#[allow(clippy::large_enum_variant)] // one per converter
enum State {
    /// Expecting a local file header (or the central directory).
    Header,
    /// Inside a member of `size` bytes (`None`: not known yet, its bytes are kept in `scan` until
    /// a matching data descriptor follows). `descriptor`: one follows the data.
    /// Without a descriptor, the header's CRC-32 is `header_crc`.
    Member {
        name: String,
        size: Option<u64>,
        done: u64,
        member: Member,
        crc: Crc32,
        descriptor: bool,
        header_crc: u32,
        scan: Vec<u8>,
    },
    /// The data descriptor after a member (its bytes so far in `got`).
    Descriptor { name: String, size: u64, crc: u32, got: Vec<u8> },
    /// The central directory was reached: the rest is the archive's index, not needed.
    Trailer,
}

/// Converts one PyTorch zip checkpoint into a pack's safetensors file, chunk by chunk (or, for
/// `tokenizer.json`, minifies it: [`JsonMinifier`]).
pub struct StreamConverter {
    file: &'static str,
    /// `Some` for `tokenizer.json`: the file is JSON, not a checkpoint.
    minify: Option<JsonMinifier>,
    dtype: PackDtype,
    meta: BTreeMap<String, String>,
    pending: Vec<u8>,
    state: State,
    /// The archive's folder prefix (e.g. "pytorch_model/"), from `data.pkl`'s member name.
    prefix: Option<String>,
    plan: Vec<Slot>,
    /// Storage key -> its index in `plan`.
    index: HashMap<String, usize>,
    /// The next slot to write, and slots that arrived before it (converted, held until their turn).
    next: usize,
    arrived: Vec<bool>,
    held: HashMap<usize, Vec<u8>>,
    held_bytes: usize,
    out: Vec<u8>,
    out_hash: Sha256,
    out_size: u64,
    in_hash: Sha256,
    in_size: u64,
    reports: Vec<TensorReport>,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// CRC-32 (zip's, IEEE 802.3), table-driven.
#[derive(Clone, Copy)]
struct Crc32(u32);

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

impl Crc32 {
    fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }
    fn update(&mut self, b: &[u8]) {
        let mut c = self.0;
        for &x in b {
            c = CRC_TABLE[((c ^ x as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }
    fn value(self) -> u32 {
        !self.0
    }
    fn of(b: &[u8]) -> u32 {
        let mut c = Crc32::new();
        c.update(b);
        c.value()
    }
}

/// Where a data descriptor for a member of `size` bytes and CRC `crc` ends in `d` (which starts
/// at the descriptor): 16 bytes with 32-bit sizes, 24 with zip64's; `None` when `d` is no such
/// descriptor, or (`Some(None)`) is too short to tell yet.
fn descriptor_len(d: &[u8], size: u64, crc: u32) -> Option<Option<usize>> {
    if d.len() < 16 {
        return Some(None);
    }
    if u32_at(d, 0) != DESCRIPTOR_SIG || u32_at(d, 4) != crc {
        return None;
    }
    if u32_at(d, 8) as u64 == size && u32_at(d, 12) as u64 == size {
        return Some(Some(16));
    }
    if d.len() < 24 {
        return Some(None);
    }
    (u64_at(d, 8) == size && u64_at(d, 16) == size).then_some(Some(24))
}

impl StreamConverter {
    /// `file`: the pack file to write, "model.safetensors" (the encoder, stored as `dtype` says)
    /// or "colbert_linear.safetensors" / "sparse_linear.safetensors" (heads: always f16), or
    /// "tokenizer.json" (BAAI's, minified).
    pub fn new(file: &str, dtype: PackDtype) -> Result<Self> {
        let (file, head) = match file {
            "tokenizer.json" => ("tokenizer.json", false),
            "model.safetensors" => ("model.safetensors", false),
            "colbert_linear.safetensors" => ("colbert_linear.safetensors", true),
            "sparse_linear.safetensors" => ("sparse_linear.safetensors", true),
            other => return Err(Error::Input(format!("{other:?} is not a pack file converted from a checkpoint"))),
        };
        Ok(StreamConverter {
            file,
            minify: (file == "tokenizer.json").then(JsonMinifier::default),
            dtype: if head { PackDtype::F16 } else { dtype },
            meta: metadata(dtype, head),
            pending: Vec::new(),
            state: State::Header,
            prefix: None,
            plan: Vec::new(),
            index: HashMap::new(),
            next: 0,
            arrived: Vec::new(),
            held: HashMap::new(),
            held_bytes: 0,
            out: Vec::new(),
            out_hash: Sha256::new(),
            out_size: 0,
            in_hash: Sha256::new(),
            in_size: 0,
            reports: Vec::new(),
        })
    }

    /// Takes the next bytes of the checkpoint; returns the next bytes of the pack file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>> {
        self.in_hash.update(chunk);
        self.in_size += chunk.len() as u64;
        if let Some(m) = &mut self.minify {
            m.push(chunk, &mut self.out);
        } else {
            let (mut at, mut idle) = (0, 0);
            while at < chunk.len() {
                let n = self.step(&chunk[at..])?;
                // A step that consumes nothing moves the state on; two in a row would be a bug.
                idle = if n == 0 { idle + 1 } else { 0 };
                debug_assert!(idle < 3, "the stream converter made no progress");
                at += n;
            }
        }
        let out = std::mem::take(&mut self.out);
        self.out_hash.update(&out);
        self.out_size += out.len() as u64;
        Ok(out)
    }

    /// The end of the checkpoint: the pack file's size and SHA-256, the source's SHA-256, and each
    /// tensor's conversion error. An archive that ended early is an error.
    pub fn finish(self) -> Result<(PackFile, String, Vec<TensorReport>)> {
        if let Some(m) = &self.minify {
            m.finish(self.file)?;
        } else if !matches!(self.state, State::Trailer) || self.prefix.is_none() || self.next < self.plan.len() {
            let what = match (&self.state, self.prefix.is_some()) {
                (_, false) => "before its data.pkl".to_string(),
                (State::Member { name, .. } | State::Descriptor { name, .. }, _) => format!("inside {name}"),
                _ if self.next < self.plan.len() => {
                    format!(
                        "before storage {} (tensor {})",
                        self.plan[self.next].storage, self.plan[self.next].planned.name
                    )
                }
                _ => "before its central directory".to_string(),
            };
            return Err(Error::Format(format!(
                "the checkpoint ended {what} after {} bytes: it is cut short",
                self.in_size
            )));
        }
        let (sha, source) = (hex(&self.out_hash.finalize()), hex(&self.in_hash.finalize()));
        Ok((PackFile { name: self.file.to_string(), size: self.out_size, sha256: sha }, source, self.reports))
    }

    /// Consumes a prefix of `b`; returns how many bytes (0 only when the state moved on).
    fn step(&mut self, b: &[u8]) -> Result<usize> {
        match &self.state {
            State::Trailer => Ok(b.len()),
            State::Header => self.header_bytes(b),
            State::Member { size: Some(_), .. } => self.member_bytes(b),
            State::Member { size: None, .. } => self.scan_bytes(b),
            State::Descriptor { .. } => self.descriptor_bytes(b),
        }
    }

    /// Gathers a local header (30 bytes, the name, the extra field) in `pending`.
    fn header_bytes(&mut self, b: &[u8]) -> Result<usize> {
        let need = if self.pending.len() < 30 {
            30
        } else {
            30 + u16_at(&self.pending, 26) as usize + u16_at(&self.pending, 28) as usize
        };
        if self.pending.len() >= need {
            let h = std::mem::take(&mut self.pending);
            self.begin_member(&h)?;
            return Ok(0);
        }
        let had = self.pending.len();
        let take = (need - had).min(b.len());
        self.pending.extend_from_slice(&b[..take]);
        if had < 4 && self.pending.len() >= 4 {
            let sig = u32_at(&self.pending, 0);
            if matches!(sig, CENTRAL_SIG | EOCD_SIG | ZIP64_EOCD_SIG) {
                self.pending.clear();
                self.state = State::Trailer;
            } else if sig != LOCAL_SIG {
                return Err(Error::Format(format!(
                    "not a zip member at byte {} (a PyTorch checkpoint is a zip archive)",
                    self.in_size - b.len() as u64 - had as u64
                )));
            }
        }
        Ok(take)
    }

    /// A local header is complete in `h`: sets the state for the member's data.
    fn begin_member(&mut self, h: &[u8]) -> Result<()> {
        let flags = u16_at(h, 6);
        let method = u16_at(h, 8);
        let name_len = u16_at(h, 26) as usize;
        let extra_len = u16_at(h, 28) as usize;
        let name = String::from_utf8_lossy(&h[30..30 + name_len]).into_owned();
        let descriptor = flags & 8 != 0;
        let mut size = u32_at(h, 18) as u64;
        if size == 0xFFFF_FFFF {
            // zip64: the extra field (id 1) holds the uncompressed then the compressed size.
            let extra = &h[30 + name_len..30 + name_len + extra_len];
            let mut e = 0;
            let mut found = None;
            while e + 4 <= extra.len() {
                let (id, len) = (u16_at(extra, e), u16_at(extra, e + 2) as usize);
                if id == 1 && len >= 16 && e + 4 + 16 <= extra.len() {
                    found = Some(u64_at(extra, e + 4 + 8));
                }
                e += 4 + len;
            }
            size = found.ok_or_else(|| Error::Format(format!("zip member {name}: zip64 sizes missing")))?;
        }
        if flags & 1 != 0 {
            return Err(Error::Format(format!("zip member {name} is encrypted")));
        }
        if method != 0 {
            return Err(Error::Format(format!("zip member {name} is compressed (torch.save stores its members)")));
        }
        // With a descriptor, a size of 0 in the header means "see the descriptor".
        let mut known = (!descriptor || size != 0).then_some(size);
        let is_pickle = name.ends_with("data.pkl") && name.matches('/').count() <= 1;
        let member = if is_pickle {
            if self.prefix.is_some() {
                return Err(Error::Format("the archive holds two data.pkl".into()));
            }
            if known.is_some_and(|n| n > MAX_SCANNED as u64) {
                return Err(Error::Format(format!("data.pkl is too large ({size} bytes)")));
            }
            Member::Pickle(Vec::new())
        } else if let Some(key) = self.storage_key(&name) {
            if self.prefix.is_none() {
                return Err(Error::Format(format!(
                    "zip member {name} comes before data.pkl: it cannot be converted while streaming (use m3 convert)"
                )));
            }
            match self.index.get(&key).copied() {
                None => Member::Skip, // a storage of a tensor a pack leaves out (position_ids)
                Some(i) if self.arrived[i] => {
                    return Err(Error::Format(format!("the archive holds storage {key} twice")));
                }
                Some(i) => {
                    let slot = &self.plan[i];
                    let elem = slot.dtype.size().unwrap_or(1);
                    let want = slot.planned.numel() as u64 * elem as u64;
                    if *known.get_or_insert(want) != want {
                        return Err(Error::Format(format!(
                            "tensor {}: its storage {key} holds {size} bytes, the tensor {want} ({:?}, {:?}): a view into a larger storage cannot be converted while streaming (use m3 convert)",
                            slot.planned.name, slot.planned.shape, slot.dtype
                        )));
                    }
                    let sink = TensorSink::new(slot.planned.clone());
                    let unit = match slot.planned.stored {
                        super::Stored::I8Rows => sink.row * elem,
                        super::Stored::F16 | super::Stored::F32 => elem,
                    };
                    self.arrived[i] = true;
                    Member::Tensor { slot: i, sink, elem, unit, buf: Vec::new(), early: Vec::new() }
                }
            }
        } else {
            Member::Skip
        };
        let empty = known == Some(0);
        let header_crc = u32_at(h, 14);
        self.state = State::Member {
            name,
            size: known,
            done: 0,
            member,
            crc: Crc32::new(),
            descriptor,
            header_crc,
            scan: Vec::new(),
        };
        if empty {
            self.data_done()?;
        }
        Ok(())
    }

    /// The storage key of member `name` (`<prefix>data/<key>`), once the prefix is known; any
    /// `*/data/<key>` before it (an error, reported by the caller).
    fn storage_key(&self, name: &str) -> Option<String> {
        match &self.prefix {
            Some(p) => name.strip_prefix(p.as_str())?.strip_prefix("data/").map(str::to_string),
            None => name.split_once("/data/").map(|(_, k)| k.to_string()),
        }
    }

    /// Bytes of a member of known size.
    fn member_bytes(&mut self, b: &[u8]) -> Result<usize> {
        let State::Member { size: Some(size), done, member, crc, .. } = &mut self.state else {
            unreachable!("member_bytes outside a member of known size")
        };
        let take = (*size - *done).min(b.len() as u64) as usize;
        let data = &b[..take];
        *done += take as u64;
        crc.update(data);
        match member {
            Member::Pickle(p) => p.extend_from_slice(data),
            Member::Skip => {}
            Member::Tensor { slot, sink, elem, unit, buf, early } => {
                // In its turn straight out; else held (see `plan`).
                let out = if *slot == self.next { &mut self.out } else { early };
                buf.extend_from_slice(data);
                // Whole units (rows for int8, elements for f16), a bounded run at a time.
                let per_step = match sink.p.stored {
                    super::Stored::I8Rows => *unit * (F16_RUN / sink.row).max(1),
                    super::Stored::F16 | super::Stored::F32 => *unit * F16_RUN,
                };
                let mut used = 0;
                while buf.len() - used >= *unit {
                    let n = ((buf.len() - used) / *unit * *unit).min(per_step);
                    let values = crate::weights::decode(&buf[used..used + n], &self.plan[*slot].dtype);
                    debug_assert_eq!(values.len(), n / *elem);
                    sink.push(&values, out)?;
                    used += n;
                }
                buf.drain(..used);
            }
        }
        if *done == *size {
            self.data_done()?;
        }
        Ok(take)
    }

    /// Bytes of a member whose size is unknown: kept until a data descriptor that matches them
    /// (size and CRC-32) follows. Returns the bytes consumed: the member's and its descriptor's,
    /// not what comes after.
    fn scan_bytes(&mut self, b: &[u8]) -> Result<usize> {
        let State::Member { name, scan, done, .. } = &mut self.state else {
            unreachable!("scan_bytes outside a member")
        };
        let before = scan.len();
        scan.extend_from_slice(b);
        // Candidates: a descriptor signature at p, the member being scan[..p]. `done` is where
        // the search goes on (a candidate too short to tell is looked at again).
        let mut p = *done as usize;
        let mut found = None;
        while p + 4 <= scan.len() {
            if u32_at(scan, p) == DESCRIPTOR_SIG {
                match descriptor_len(&scan[p..], p as u64, Crc32::of(&scan[..p])) {
                    Some(Some(len)) => {
                        found = Some((p, len));
                        break;
                    }
                    Some(None) => break, // wait for more bytes
                    None => {}
                }
            }
            p += 1;
        }
        *done = p as u64;
        let Some((p, len)) = found else {
            if scan.len() > MAX_SCANNED {
                return Err(Error::Format(format!(
                    "zip member {name}: no data descriptor within {MAX_SCANNED} bytes: it cannot be converted while streaming (use m3 convert)"
                )));
            }
            return Ok(b.len());
        };
        let consumed = p + len - before;
        let State::Member { scan, member, .. } = &mut self.state else { unreachable!() };
        if let Member::Pickle(bytes) = member {
            scan.truncate(p);
            *bytes = std::mem::take(scan);
        }
        self.end_member()?;
        Ok(consumed)
    }

    /// The data descriptor after a member of known size: its sizes and CRC-32 must be the member's.
    fn descriptor_bytes(&mut self, b: &[u8]) -> Result<usize> {
        let State::Descriptor { name, size, crc, got } = &mut self.state else { unreachable!("descriptor_bytes") };
        let before = got.len();
        got.extend_from_slice(&b[..(24 - before).min(b.len())]);
        match descriptor_len(got, *size, *crc) {
            None => Err(Error::Format(format!(
                "zip member {name}: its data descriptor does not match its data (CRC-32 or size): a damaged download or file?"
            ))),
            Some(None) if got.len() < 24 => Ok(got.len() - before),
            Some(None) => unreachable!("24 bytes always tell"),
            Some(Some(len)) => {
                self.state = State::Header;
                Ok(len - before)
            }
        }
    }

    /// The data of a member of known size is complete: its descriptor next, or the next header.
    fn data_done(&mut self) -> Result<()> {
        let State::Member { name, size: Some(size), crc, descriptor, header_crc, .. } = &self.state else {
            unreachable!("data_done")
        };
        if !descriptor && crc.value() != *header_crc {
            return Err(Error::Format(format!("zip member {name}: CRC-32 mismatch: a damaged download or file?")));
        }
        let next = descriptor.then(|| State::Descriptor {
            name: name.clone(),
            size: *size,
            crc: crc.value(),
            got: Vec::new(),
        });
        self.end_member()?;
        if let Some(d) = next {
            self.state = d;
        }
        Ok(())
    }

    /// The current member is complete (its bytes, not its descriptor): the state is `Header`.
    fn end_member(&mut self) -> Result<()> {
        let State::Member { name, member, .. } = std::mem::replace(&mut self.state, State::Header) else {
            unreachable!("end_member outside a member")
        };
        match member {
            Member::Skip => {}
            Member::Pickle(bytes) => {
                self.prefix = Some(name[..name.len() - "data.pkl".len()].to_string());
                self.plan(load_state_dict(&bytes)?)?;
                let plan: Vec<Planned> = self.plan.iter().map(|s| s.planned.clone()).collect();
                self.out.extend(safetensors_header(&plan, &self.meta)?);
            }
            Member::Tensor { slot, sink, buf, mut early, .. } => {
                debug_assert!(buf.is_empty());
                if slot == self.next {
                    self.reports.push(sink.finish(self.file, &mut self.out));
                    self.next += 1;
                    while let Some(bytes) = self.held.remove(&self.next) {
                        self.held_bytes -= bytes.len();
                        self.out.extend(bytes);
                        self.next += 1;
                    }
                } else {
                    self.reports.push(sink.finish(self.file, &mut early));
                    self.held_bytes += early.len();
                    if self.held_bytes > MAX_HELD {
                        return Err(Error::Format(format!(
                            "storages arrive too far out of order ({} MiB held waiting for storage {}): convert with m3 convert",
                            self.held_bytes >> 20,
                            self.plan[self.next].storage
                        )));
                    }
                    self.held.insert(slot, early);
                }
            }
        }
        Ok(())
    }

    /// Plans the safetensors file from the state dict: one slot per packed tensor, in the numeric
    /// order of the storage keys, which is the order recent `torch.save` writes them. Older
    /// versions wrote them sorted as strings ("0", "1", "10", "100", ...): a storage that comes
    /// before its turn is converted and held until then (a quarter to a half of the model, at
    /// most [`MAX_HELD`]).
    fn plan(&mut self, tensors: Vec<(String, PickledTensor)>) -> Result<()> {
        // Numeric keys in numeric order, then any others as strings.
        let order = |k: &str| (k.parse::<u64>().map_or(1u8, |_| 0), k.parse::<u64>().unwrap_or(0), k.to_string());
        let mut by_storage: BTreeMap<(u8, u64, String), Slot> = BTreeMap::new();
        for (name, t) in tensors {
            if !packed(&name, &t.dtype) || t.dtype == DType::I8 {
                continue;
            }
            let mut want = 1usize;
            let mut contiguous = t.shape.len() == t.strides.len();
            for (d, s) in t.shape.iter().zip(&t.strides).rev() {
                contiguous &= *d <= 1 || *s == want;
                want = want.saturating_mul(*d);
            }
            if t.offset != 0 || !contiguous {
                return Err(Error::Format(format!(
                    "tensor {name} is a strided or offset view of its storage: it cannot be converted while streaming (use m3 convert)"
                )));
            }
            if t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_none_or(|n| n as u64 > 1u64 << 40) {
                return Err(Error::Format(format!("tensor {name}: shape {:?} is too large", t.shape)));
            }
            let stored = stored_as(&name, &t.shape, self.dtype);
            let planned = Planned { name: name.clone(), shape: t.shape, stored };
            let slot = Slot { storage: t.storage.clone(), dtype: t.dtype, planned };
            if let Some(other) = by_storage.insert(order(&t.storage), slot) {
                return Err(Error::Format(format!(
                    "tensors {} and {name} share storage {}: it cannot be converted while streaming (use m3 convert)",
                    other.planned.name, t.storage
                )));
            }
        }
        self.plan = by_storage.into_values().collect();
        self.arrived = vec![false; self.plan.len()];
        self.index = self.plan.iter().enumerate().map(|(i, s)| (s.storage.clone(), i)).collect();
        Ok(())
    }
}
