//! A small pickle interpreter for the `data.pkl` of a `torch.save` archive: it rebuilds the
//! state dict as a map from tensor name to (storage key, dtype, offset, shape, strides). Only
//! the opcodes and globals that `torch.save(state_dict)` writes are understood; anything else
//! becomes an opaque value, and what cannot be parsed is an error, never a panic.

use crate::error::{Error, Result};

use super::DType;

/// A tensor as the pickle describes it: the bytes live in `data/<storage>` of the archive.
#[derive(Debug, Clone)]
pub struct PickledTensor {
    pub storage: String,
    pub dtype: DType,
    /// In elements, from the start of the storage.
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

#[derive(Debug, Clone)]
#[allow(dead_code)] // payloads kept for debugging output
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage { key: String, dtype: DType },
    Tensor(PickledTensor),
    Opaque,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Format(format!("checkpoint pickle: {}", msg.into()))
}

struct Reader<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.p + n > self.b.len() {
            return Err(bad("ends in the middle of an opcode (truncated)"));
        }
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String> {
        let start = self.p;
        while self.p < self.b.len() && self.b[self.p] != b'\n' {
            self.p += 1;
        }
        let s = String::from_utf8_lossy(&self.b[start..self.p]).into_owned();
        self.take(1)?;
        Ok(s)
    }
    fn string(&mut self, n: usize) -> Result<String> {
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

fn as_usize(v: &Value, what: &str) -> Result<usize> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        _ => Err(bad(format!("{what} is not a non-negative integer"))),
    }
}

fn as_usizes(v: &Value, what: &str) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(|x| as_usize(x, what)).collect(),
        _ => Err(bad(format!("{what} is not a tuple"))),
    }
}

fn storage_dtype(name: &str) -> DType {
    match name {
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        other => DType::Other(other.to_string()),
    }
}

fn reduce(func: Value, args: Value) -> Result<Value> {
    let Value::Global(module, name) = func else { return Ok(Value::Opaque) };
    let Value::Tuple(args) = args else { return Ok(Value::Opaque) };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            if args.len() < 4 {
                return Err(bad("_rebuild_tensor_v2 with too few arguments"));
            }
            let Value::Storage { key, dtype } = &args[0] else {
                return Err(bad("tensor without a storage"));
            };
            Ok(Value::Tensor(PickledTensor {
                storage: key.clone(),
                dtype: dtype.clone(),
                offset: as_usize(&args[1], "storage offset")?,
                shape: as_usizes(&args[2], "tensor size")?,
                strides: as_usizes(&args[3], "tensor stride")?,
            }))
        }
        ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => {
            Ok(args.into_iter().next().unwrap_or(Value::Opaque))
        }
        _ => Ok(Value::Opaque),
    }
}

fn persistent_load(pid: Value) -> Result<Value> {
    // ('storage', storage_type, key, location, numel)
    let Value::Tuple(items) = pid else { return Err(bad("persistent id is not a tuple")) };
    match items.as_slice() {
        [Value::Str(tag), Value::Global(_, ty), key, ..] if tag == "storage" => {
            let key = match key {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                _ => return Err(bad("storage key is not a string")),
            };
            Ok(Value::Storage { key, dtype: storage_dtype(ty) })
        }
        _ => Err(bad("unknown persistent id")),
    }
}

/// Runs the pickle and returns the tensors of the top-level dict, in file order.
pub fn load_state_dict(bytes: &[u8]) -> Result<Vec<(String, PickledTensor)>> {
    let mut r = Reader { b: bytes, p: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: std::collections::HashMap<u32, Value> = Default::default();
    let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| bad("stack underflow"));
    let pop_mark = |stack: &mut Vec<Value>, marks: &mut Vec<usize>| -> Result<Vec<Value>> {
        let m = marks.pop().ok_or_else(|| bad("no mark"))?;
        if m > stack.len() {
            return Err(bad("mark past the stack"));
        }
        Ok(stack.split_off(m))
    };
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?;
            } // PROTO
            0x95 => {
                r.take(8)?;
            } // FRAME
            b'.' => break, // STOP
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'(' => marks.push(stack.len()),
            b't' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(bad("stack underflow"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'q' => {
                let k = r.u8()? as u32;
                memo.insert(k, stack.last().cloned().ok_or_else(|| bad("empty stack"))?);
            }
            b'r' => {
                let k = r.u32()?;
                memo.insert(k, stack.last().cloned().ok_or_else(|| bad("empty stack"))?);
            }
            0x94 => {
                let k = memo.len() as u32;
                memo.insert(k, stack.last().cloned().ok_or_else(|| bad("empty stack"))?);
            }
            b'h' | b'j' => {
                let k = if op == b'h' { r.u8()? as u32 } else { r.u32()? };
                stack.push(memo.get(&k).cloned().ok_or_else(|| bad("unknown memo key"))?);
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.string(n)?));
            }
            0x8c | b'U' => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(r.string(n)?));
            }
            b'T' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.string(n)?));
            }
            b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'B' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(r.u16()? as i64)),
            b'J' => stack.push(Value::Int(r.u32()? as i32 as i64)),
            0x8a => {
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                if n > 8 {
                    return Err(bad("integer too large"));
                }
                let mut v: i64 = 0;
                for (i, byte) in b.iter().enumerate() {
                    v |= (*byte as i64) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => {
                let b: [u8; 8] = r.take(8)?.try_into().unwrap();
                stack.push(Value::Float(f64::from_be_bytes(b)));
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(m, n)),
                    _ => return Err(bad("STACK_GLOBAL without strings")),
                }
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                stack.push(persistent_load(pid)?);
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let func = pop(&mut stack)?;
                stack.push(reduce(func, args)?);
            }
            0x81 => {
                // NEWOBJ: cls.__new__(cls, *args)
                let args = pop(&mut stack)?;
                let cls = pop(&mut stack)?;
                stack.push(reduce(cls, args)?);
            }
            b'b' => {
                // BUILD: set state; the state of an OrderedDict (its _metadata) is not needed.
                pop(&mut stack)?;
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.push((k, v)),
                    Some(_) => {}
                    None => return Err(bad("SETITEM on empty stack")),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => {
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.push((k, v));
                        }
                    }
                    Some(_) => {}
                    None => return Err(bad("SETITEMS on empty stack")),
                }
            }
            b'a' => {
                let v = pop(&mut stack)?;
                if let Some(Value::List(l)) = stack.last_mut() {
                    l.push(v);
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                if let Some(Value::List(l)) = stack.last_mut() {
                    l.extend(items);
                }
            }
            b'0' => {
                pop(&mut stack)?;
            } // POP
            b'2' => {
                let top = stack.last().cloned().ok_or_else(|| bad("empty stack"))?;
                stack.push(top);
            } // DUP
            other => return Err(bad(format!("unsupported opcode 0x{other:02x} at byte {}", r.p - 1))),
        }
    }
    let top = stack.pop().ok_or_else(|| bad("empty pickle"))?;
    let Value::Dict(items) = top else {
        return Err(bad("the checkpoint is not a state dict (top-level object is not a dict)"));
    };
    let mut out = Vec::new();
    for (k, v) in items {
        if let (Value::Str(name), Value::Tensor(t)) = (k, v) {
            out.push((name, t));
        }
    }
    Ok(out)
}
