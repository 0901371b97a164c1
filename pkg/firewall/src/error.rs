//! The crate's error: what failed, on which table or chain, and the tool's own words.

use std::fmt;

/// What kind of failure an [`Error`] is, so callers can pick a CNI error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is unusable (unknown backend, names that cannot be written).
    InvalidConfig,
    /// The netfilter tool is not installed.
    ToolMissing,
    /// The tool ran and failed, or could not be run.
    ToolFailed,
    /// CHECK found rules missing or different.
    CheckFailed,
}

/// A firewall error. The message names the table or chain and carries the tool's stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }

    pub(crate) fn check(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CheckFailed, message)
    }

    /// Folds the failures of a teardown that kept going into one error, or `Ok` if none.
    pub(crate) fn collect(errors: Vec<Error>) -> Result<()> {
        let mut iter = errors.into_iter();
        let Some(mut first) = iter.next() else {
            return Ok(());
        };
        for other in iter {
            first.message.push_str("; ");
            first.message.push_str(&other.message);
        }
        Err(first)
    }

    /// Adds what we were doing in front of the message.
    #[must_use]
    pub(crate) fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
