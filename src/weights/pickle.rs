//! A small pickle interpreter for the `data.pkl` of a `torch.save` archive: it rebuilds the
//! state dict as a map from tensor name to (storage key, dtype, offset, shape, strides). Only
//! the opcodes and globals that `torch.save(state_dict)` writes are understood: another global
//! is refused by name, what cannot be parsed is an error, never a panic, and memory and time grow
//! with the pickle's size alone (see [`Value`]).

use std::rc::Rc;

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

/// A pickle value. Containers live in an arena ([`Machine::arena`]) and values refer to them by
/// index, so that `DUP` and memo `GET` copy a handle, never the data (84 bytes of `DUP`s cannot
/// double memory 40 times), a list appended to through one handle is seen through all (as in
/// Python), and nothing is nested in Rust: no crafted depth can overflow the stack on drop.
#[derive(Debug, Clone)]
#[allow(dead_code)] // payloads kept for debugging output
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Global(Rc<(String, String)>),
    Storage(Rc<(String, DType)>),
    Tensor(Rc<PickledTensor>),
    /// Arena index of a tuple, list or dict.
    Tuple(usize),
    List(usize),
    Dict(usize),
    Opaque,
}

/// Pickled objects this reader rebuilds; any other global is refused by name.
fn allowed_global(module: &str, name: &str) -> bool {
    match module {
        "collections" => name == "OrderedDict",
        "torch._utils" => {
            matches!(
                name,
                "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_parameter" | "_rebuild_parameter_with_state"
            )
        }
        // Typed storages: FloatStorage, HalfStorage, BFloat16Storage, LongStorage, ...
        "torch" => name.ends_with("Storage") && name.chars().all(|c| c.is_ascii_alphanumeric()),
        _ => false,
    }
}

/// A container in the arena.
#[derive(Debug)]
enum Container {
    Seq(Vec<Value>),
    Map(Vec<(Value, Value)>),
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

struct Machine {
    arena: Vec<Container>,
}

impl Machine {
    fn seq(&mut self, items: Vec<Value>) -> usize {
        self.arena.push(Container::Seq(items));
        self.arena.len() - 1
    }

    fn map(&mut self) -> usize {
        self.arena.push(Container::Map(Vec::new()));
        self.arena.len() - 1
    }

    /// The items of a tuple or list.
    fn items(&self, v: &Value) -> Option<&[Value]> {
        match v {
            Value::Tuple(i) | Value::List(i) => match &self.arena[*i] {
                Container::Seq(items) => Some(items),
                Container::Map(_) => None,
            },
            _ => None,
        }
    }

    fn as_usizes(&self, v: &Value, what: &str) -> Result<Vec<usize>> {
        let items = self.items(v).ok_or_else(|| bad(format!("{what} is not a tuple")))?;
        items.iter().map(|x| as_usize(x, what)).collect()
    }

    fn reduce(&mut self, func: Value, args: Value) -> Result<Value> {
        let Value::Global(g) = func else { return Ok(Value::Opaque) };
        let Some(args) = self.items(&args) else { return Ok(Value::Opaque) };
        match (g.0.as_str(), g.1.as_str()) {
            ("collections", "OrderedDict") => Ok(Value::Dict(self.map())),
            ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                if args.len() < 4 {
                    return Err(bad("_rebuild_tensor_v2 with too few arguments"));
                }
                let Value::Storage(storage) = &args[0] else {
                    return Err(bad("tensor without a storage"));
                };
                Ok(Value::Tensor(Rc::new(PickledTensor {
                    storage: storage.0.clone(),
                    dtype: storage.1.clone(),
                    offset: as_usize(&args[1], "storage offset")?,
                    shape: self.as_usizes(&args[2], "tensor size")?,
                    strides: self.as_usizes(&args[3], "tensor stride")?,
                })))
            }
            ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => {
                Ok(args.first().cloned().unwrap_or(Value::Opaque))
            }
            _ => Ok(Value::Opaque),
        }
    }

    fn persistent_load(&self, pid: Value) -> Result<Value> {
        // ('storage', storage_type, key, location, numel)
        let items = self.items(&pid).ok_or_else(|| bad("persistent id is not a tuple"))?;
        match items {
            [Value::Str(tag), Value::Global(ty), key, ..] if &**tag == "storage" => {
                let key = match key {
                    Value::Str(s) => s.to_string(),
                    Value::Int(i) => i.to_string(),
                    _ => return Err(bad("storage key is not a string")),
                };
                Ok(Value::Storage(Rc::new((key, storage_dtype(&ty.1)))))
            }
            _ => Err(bad("unknown persistent id")),
        }
    }

    /// Appends to the list (or sets in the dict) that `target` is; other targets ignore it, as
    /// the objects this reader does not rebuild.
    fn extend(&mut self, target: Option<&Value>, items: Vec<Value>, pairs: bool) -> Result<()> {
        match (target, pairs) {
            (Some(Value::List(i)), false) => {
                if let Container::Seq(l) = &mut self.arena[*i] {
                    l.extend(items);
                }
            }
            (Some(Value::Dict(i)), true) => {
                if let Container::Map(d) = &mut self.arena[*i] {
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
            }
            (Some(_), _) => {}
            (None, _) => return Err(bad("append or set on an empty stack")),
        }
        Ok(())
    }
}

fn as_usize(v: &Value, what: &str) -> Result<usize> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        _ => Err(bad(format!("{what} is not a non-negative integer"))),
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

/// Runs the pickle and returns the tensors of the top-level dict, in file order.
pub fn load_state_dict(bytes: &[u8]) -> Result<Vec<(String, PickledTensor)>> {
    let mut r = Reader { b: bytes, p: 0 };
    let mut m = Machine { arena: Vec::new() };
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: std::collections::HashMap<u32, Value> = Default::default();
    let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| bad("stack underflow"));
    let pop_mark = |stack: &mut Vec<Value>, marks: &mut Vec<usize>| -> Result<Vec<Value>> {
        let at = marks.pop().ok_or_else(|| bad("no mark"))?;
        if at > stack.len() {
            return Err(bad("mark past the stack"));
        }
        Ok(stack.split_off(at))
    };
    let top = |stack: &Vec<Value>| stack.last().cloned().ok_or_else(|| bad("empty stack"));
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
            b'}' => {
                let d = m.map();
                stack.push(Value::Dict(d));
            }
            b']' => {
                let l = m.seq(Vec::new());
                stack.push(Value::List(l));
            }
            b')' => {
                let t = m.seq(Vec::new());
                stack.push(Value::Tuple(t));
            }
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'(' => marks.push(stack.len()),
            b't' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                let t = m.seq(items);
                stack.push(Value::Tuple(t));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(bad("stack underflow"));
                }
                let items = stack.split_off(stack.len() - n);
                let t = m.seq(items);
                stack.push(Value::Tuple(t));
            }
            b'q' => {
                let k = r.u8()? as u32;
                memo.insert(k, top(&stack)?);
            }
            b'r' => {
                let k = r.u32()?;
                memo.insert(k, top(&stack)?);
            }
            0x94 => {
                let k = memo.len() as u32;
                memo.insert(k, top(&stack)?);
            }
            b'h' | b'j' => {
                let k = if op == b'h' { r.u8()? as u32 } else { r.u32()? };
                stack.push(memo.get(&k).cloned().ok_or_else(|| bad("unknown memo key"))?);
            }
            b'X' | b'T' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.string(n)?.into()));
            }
            0x8c | b'U' => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(r.string(n)?.into()));
            }
            b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.into()));
            }
            b'B' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.into()));
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
            b'c' | 0x93 => {
                let (module, name) = if op == b'c' {
                    (r.line()?, r.line()?)
                } else {
                    let name = pop(&mut stack)?;
                    let module = pop(&mut stack)?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => (m.to_string(), n.to_string()),
                        _ => return Err(bad("STACK_GLOBAL without strings")),
                    }
                };
                if !allowed_global(&module, &name) {
                    return Err(bad(format!(
                        "refers to {module}.{name}, which a state dict does not use (refused: it could run code in PyTorch)"
                    )));
                }
                stack.push(Value::Global(Rc::new((module, name))));
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                stack.push(m.persistent_load(pid)?);
            }
            b'R' | 0x81 => {
                // REDUCE: func(*args); NEWOBJ: cls.__new__(cls, *args)
                let args = pop(&mut stack)?;
                let func = pop(&mut stack)?;
                stack.push(m.reduce(func, args)?);
            }
            b'b' => {
                // BUILD: set state; the state of an OrderedDict (its _metadata) is not needed.
                pop(&mut stack)?;
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                m.extend(stack.last(), vec![k, v], true)?;
            }
            b'u' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                m.extend(stack.last(), items, true)?;
            }
            b'a' => {
                let v = pop(&mut stack)?;
                m.extend(stack.last(), vec![v], false)?;
            }
            b'e' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                m.extend(stack.last(), items, false)?;
            }
            b'0' => {
                pop(&mut stack)?;
            } // POP
            b'2' => {
                let v = top(&stack)?;
                stack.push(v);
            } // DUP
            other => return Err(bad(format!("unsupported opcode 0x{other:02x} at byte {}", r.p - 1))),
        }
    }
    let Some(Value::Dict(d)) = stack.pop() else {
        return Err(bad("the checkpoint is not a state dict (top-level object is not a dict)"));
    };
    let Container::Map(items) = &m.arena[d] else { return Err(bad("the top-level dict is not a dict")) };
    let mut out = Vec::new();
    for (k, v) in items {
        if let (Value::Str(name), Value::Tensor(t)) = (k, v) {
            out.push((name.to_string(), PickledTensor::clone(t)));
        }
    }
    Ok(out)
}
