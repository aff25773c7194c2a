//! The one error type of the crate. Every failure a user can cause (bad files, bad input,
//! missing adapter) ends up here with a message that says what went wrong.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A model file is missing, truncated, corrupt or of an unknown format.
    Format(String),
    /// A tensor is missing from the checkpoint or has the wrong shape.
    Weights(String),
    /// `config.json` is missing a field or holds an unsupported value.
    Config(String),
    /// The tokenizer could not be built or could not encode a text.
    Tokenizer(String),
    /// The caller passed something the model cannot take (a token id outside the vocabulary, ...).
    Input(String),
    /// A numeric option outside its allowed range (a JS `RangeError` across the wasm boundary).
    OutOfRange(String),

    /// The compute device failed (no adapter, lost device, readback failed).
    Device(String),
    /// An I/O error while reading a file.
    Io(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Format(m) => write!(f, "bad model file: {m}"),
            Error::Weights(m) => write!(f, "weights: {m}"),
            Error::Config(m) => write!(f, "config: {m}"),
            Error::Tokenizer(m) => write!(f, "tokenizer: {m}"),
            Error::Input(m) => write!(f, "invalid input: {m}"),
            Error::OutOfRange(m) => write!(f, "invalid input: {m}"),
            Error::Device(m) => write!(f, "device: {m}"),
            Error::Io(m) => write!(f, "i/o: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The variant's name, as `error.kind` in JS: "format", "weights", "config", "tokenizer",
    /// "input", "range", "device" or "io".
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Format(_) => "format",
            Error::Weights(_) => "weights",
            Error::Config(_) => "config",
            Error::Tokenizer(_) => "tokenizer",
            Error::Input(_) => "input",
            Error::OutOfRange(_) => "range",
            Error::Device(_) => "device",
            Error::Io(_) => "io",
        }
    }
}

impl Error {
    /// The same error (same kind) with the file it came from in front of its message.
    pub fn in_file(self, file: &str) -> Error {
        let at = |m: String| format!("{file}: {m}");
        match self {
            Error::Format(m) => Error::Format(at(m)),
            Error::Weights(m) => Error::Weights(at(m)),
            Error::Config(m) => Error::Config(at(m)),
            Error::Tokenizer(m) => Error::Tokenizer(at(m)),
            Error::Input(m) => Error::Input(at(m)),
            Error::OutOfRange(m) => Error::OutOfRange(at(m)),
            Error::Device(m) => Error::Device(at(m)),
            Error::Io(m) => Error::Io(at(m)),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
