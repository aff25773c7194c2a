//! The central directory of a zip archive, just enough to find the members of a PyTorch
//! checkpoint (`torch.save` writes them uncompressed, so a member is a byte range of the file).

use super::ReadAt;
use crate::error::{Error, Result};

/// One stored (uncompressed) member of the archive.
#[derive(Debug, Clone)]
pub struct ZipMember {
    pub name: String,
    /// Offset of the member's first data byte in the archive.
    pub data_offset: u64,
    pub size: u64,
    /// 0 = stored; anything else cannot be read as a plain byte range.
    pub method: u16,
}

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().unwrap())
}

fn truncated(what: &str) -> Error {
    Error::Format(format!("zip archive is truncated or corrupt ({what})"))
}

/// Reads the central directory and resolves every member to its data range.
pub fn read_members(src: &dyn ReadAt) -> Result<Vec<ZipMember>> {
    let size = src.size();
    // End of central directory: 22 bytes plus a comment of up to 65535 bytes.
    let tail_len = size.min(22 + 65535 + 20);
    let mut tail = vec![0u8; tail_len as usize];
    src.read_at(size - tail_len, &mut tail)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(&tail, i) == EOCD_SIG)
        .ok_or_else(|| truncated("no end-of-central-directory record; the file may be cut short"))?;
    let mut count = u16_at(&tail, eocd + 10) as u64;
    let mut cd_size = u32_at(&tail, eocd + 12) as u64;
    let mut cd_offset = u32_at(&tail, eocd + 16) as u64;
    if eocd >= 20 && u32_at(&tail, eocd - 20) == ZIP64_LOCATOR_SIG {
        let rec_offset = u64_at(&tail, eocd - 20 + 8);
        let mut rec = [0u8; 56];
        if rec_offset.checked_add(56).is_none_or(|end| end > size) {
            return Err(truncated("zip64 record out of range"));
        }
        src.read_at(rec_offset, &mut rec)?;
        if u32_at(&rec, 0) != ZIP64_EOCD_SIG {
            return Err(truncated("bad zip64 record"));
        }
        count = u64_at(&rec, 32);
        cd_size = u64_at(&rec, 40);
        cd_offset = u64_at(&rec, 48);
    }
    if cd_offset.checked_add(cd_size).is_none_or(|end| end > size) || cd_size > (1 << 30) {
        return Err(truncated("central directory out of range"));
    }
    let mut cd = vec![0u8; cd_size as usize];
    src.read_at(cd_offset, &mut cd)?;
    // Each entry takes at least 46 bytes of the directory: a count beyond that is a lie, and is
    // never trusted for an allocation.
    if count > (cd.len() / 46) as u64 {
        return Err(truncated(&format!("{count} entries claimed in a central directory of {} bytes", cd.len())));
    }
    let mut members: Vec<ZipMember> = Vec::with_capacity(count as usize);
    let mut names = std::collections::HashSet::new();
    let mut p = 0usize;
    for _ in 0..count {
        if p + 46 > cd.len() || u32_at(&cd, p) != CENTRAL_SIG {
            return Err(truncated("bad central directory entry"));
        }
        let flags = u16_at(&cd, p + 8);
        let method = u16_at(&cd, p + 10);
        let mut csize = u32_at(&cd, p + 20) as u64;
        let mut usize_ = u32_at(&cd, p + 24) as u64;
        let name_len = u16_at(&cd, p + 28) as usize;
        let extra_len = u16_at(&cd, p + 30) as usize;
        let comment_len = u16_at(&cd, p + 32) as usize;
        let mut local = u32_at(&cd, p + 42) as u64;
        let end = p + 46 + name_len + extra_len + comment_len;
        if end > cd.len() {
            return Err(truncated("central directory entry overruns"));
        }
        let name = String::from_utf8_lossy(&cd[p + 46..p + 46 + name_len]).into_owned();
        if flags & 1 != 0 {
            return Err(Error::Format(format!("zip member {name} is encrypted")));
        }
        if !names.insert(name.clone()) {
            return Err(Error::Format(format!("zip archive holds {name} twice")));
        }
        // The zip64 extra field holds the 64-bit values of the fields saturated above.
        let mut e = p + 46 + name_len;
        let extra_end = e + extra_len;
        while e + 4 <= extra_end {
            let id = u16_at(&cd, e);
            // A field that claims more bytes than the extra area holds is cut to what is there.
            let len = (u16_at(&cd, e + 2) as usize).min(extra_end - (e + 4));
            let mut q = e + 4;
            if id == 1 {
                for field in [&mut usize_, &mut csize, &mut local] {
                    if *field == 0xFFFF_FFFF && q + 8 <= e + 4 + len {
                        *field = u64_at(&cd, q);
                        q += 8;
                    }
                }
            }
            e += 4 + len;
        }
        // The local header has its own (possibly different) extra field: read it for the offset.
        let mut lh = [0u8; 30];
        if local.checked_add(30).is_none_or(|end| end > size) {
            return Err(truncated(&format!("member {name} out of range")));
        }
        src.read_at(local, &mut lh)?;
        if u32_at(&lh, 0) != LOCAL_SIG {
            return Err(truncated(&format!("bad local header for {name}")));
        }
        let data_offset = local + 30 + u16_at(&lh, 26) as u64 + u16_at(&lh, 28) as u64;
        if data_offset.checked_add(csize).is_none_or(|end| end > size) {
            return Err(truncated(&format!("member {name} runs past the end of the file")));
        }
        members.push(ZipMember { name, data_offset, size: csize, method });
        p = end;
    }
    Ok(members)
}
