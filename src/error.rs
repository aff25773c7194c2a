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
    /// The caller passed something the model cannot take (empty list, bad option, ...).
    Input(String),
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
            Error::Device(m) => write!(f, "device: {m}"),
            Error::Io(m) => write!(f, "i/o: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
