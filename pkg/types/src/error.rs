//! The CNI error document and its codes (spec "Error" section, libcni `types.Error`).

use std::fmt;

/// Well-known CNI error codes. 999 is what the Go skel gives every plain plugin failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    IncompatibleVersion,
    UnsupportedField,
    UnknownContainer,
    InvalidEnvironment,
    Io,
    Decoding,
    InvalidConfig,
    /// CNI_NETNS is the plugin's own namespace (Go library only).
    InvalidNetNs,
    TryAgainLater,
    /// STATUS: the plugin cannot service ADD.
    NotAvailable,
    /// STATUS: not available, and existing containers may have limited connectivity.
    NotAvailableLimited,
    Internal,
    /// A plugin-specific code (100+), or any code read back from a delegated plugin.
    Other(u32),
}

impl Code {
    #[must_use]
    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnvironment => 4,
            Code::Io => 5,
            Code::Decoding => 6,
            Code::InvalidConfig => 7,
            Code::InvalidNetNs => 8,
            Code::TryAgainLater => 11,
            Code::NotAvailable => 50,
            Code::NotAvailableLimited => 51,
            Code::Internal => 999,
            Code::Other(n) => n,
        }
    }

    #[must_use]
    pub fn from_number(n: u32) -> Code {
        match n {
            1 => Code::IncompatibleVersion,
            2 => Code::UnsupportedField,
            3 => Code::UnknownContainer,
            4 => Code::InvalidEnvironment,
            5 => Code::Io,
            6 => Code::Decoding,
            7 => Code::InvalidConfig,
            8 => Code::InvalidNetNs,
            11 => Code::TryAgainLater,
            50 => Code::NotAvailable,
            51 => Code::NotAvailableLimited,
            999 => Code::Internal,
            n => Code::Other(n),
        }
    }
}

/// A CNI error: what a plugin prints on stdout (with exit status 1) when a verb fails.
///
/// `msg` is short and lowercase, naming the key, variable, interface or file involved;
/// `details` carries the specifics (the underlying OS error, the offending value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Code, msg: impl Into<String>) -> Error {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Error {
        self.details = details.into();
        self
    }

    pub fn incompatible_version(msg: impl Into<String>) -> Error {
        Error::new(Code::IncompatibleVersion, msg)
    }
    pub fn unsupported_field(msg: impl Into<String>) -> Error {
        Error::new(Code::UnsupportedField, msg)
    }
    pub fn unknown_container(msg: impl Into<String>) -> Error {
        Error::new(Code::UnknownContainer, msg)
    }
    pub fn invalid_env(msg: impl Into<String>) -> Error {
        Error::new(Code::InvalidEnvironment, msg)
    }
    pub fn io(msg: impl Into<String>) -> Error {
        Error::new(Code::Io, msg)
    }
    pub fn decoding(msg: impl Into<String>) -> Error {
        Error::new(Code::Decoding, msg)
    }
    pub fn invalid_config(msg: impl Into<String>) -> Error {
        Error::new(Code::InvalidConfig, msg)
    }
    pub fn try_again(msg: impl Into<String>) -> Error {
        Error::new(Code::TryAgainLater, msg)
    }
    pub fn not_available(msg: impl Into<String>) -> Error {
        Error::new(Code::NotAvailable, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Error {
        Error::new(Code::Internal, msg)
    }

    /// Prefixes the message with what the caller was doing ("setting up eth0: ..."),
    /// keeping the code and details.
    #[must_use]
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// The error document as the Go library writes it: `code`, `msg`, and `details` only
    /// when non-empty.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = serde_json::Map::new();
        doc.insert("code".into(), self.code.number().into());
        doc.insert("msg".into(), self.msg.clone().into());
        if !self.details.is_empty() {
            doc.insert("details".into(), self.details.clone().into());
        }
        serde_json::Value::Object(doc)
    }

    /// The error document exactly as the Go skel prints it: `code`, `msg`, `details` (when
    /// non-empty) in that order, indented with four spaces, `<`, `>` and `&` escaped, no
    /// trailing newline.
    #[must_use]
    pub fn to_json_string(&self) -> String {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        let doc = Doc {
            code: self.code.number(),
            msg: &self.msg,
            details: &self.details,
        };
        // Serializing a struct of a number and strings cannot fail.
        crate::json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// Reads an error document printed by another plugin (a delegated IPAM), so it can be
    /// passed up unchanged. `None` when `doc` is not an error document.
    #[must_use]
    pub fn from_json(doc: &serde_json::Value) -> Option<Error> {
        let code = u32::try_from(doc.get("code")?.as_u64()?).ok()?;
        let msg = doc.get("msg").and_then(|m| m.as_str()).unwrap_or_default();
        let details = doc
            .get("details")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        Some(Error::new(Code::from_number(code), msg).with_details(details))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for Error {}

/// Adds context to any error on its way into a CNI `Error`, choosing the code at the call.
pub trait ResultExt<T> {
    /// Internal failure (999) with message `what` and the source error as details.
    fn or_internal(self, what: impl FnOnce() -> String) -> Result<T>;
    /// Failure with `code`, message `what`, and the source error as details.
    fn or_code(self, code: Code, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> ResultExt<T> for std::result::Result<T, E> {
    fn or_internal(self, what: impl FnOnce() -> String) -> Result<T> {
        self.or_code(Code::Internal, what)
    }
    fn or_code(self, code: Code, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(code, format!("{}: {e}", what())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_its_number_and_back() {
        let table = [
            (Code::IncompatibleVersion, 1),
            (Code::UnsupportedField, 2),
            (Code::UnknownContainer, 3),
            (Code::InvalidEnvironment, 4),
            (Code::Io, 5),
            (Code::Decoding, 6),
            (Code::InvalidConfig, 7),
            (Code::InvalidNetNs, 8),
            (Code::TryAgainLater, 11),
            (Code::NotAvailable, 50),
            (Code::NotAvailableLimited, 51),
            (Code::Internal, 999),
            (Code::Other(123), 123),
        ];
        for (code, n) in table {
            assert_eq!(code.number(), n, "{code:?}");
            assert_eq!(Code::from_number(n), code, "{n}");
        }
    }

    #[test]
    fn document_omits_empty_details_and_round_trips() {
        let e = Error::invalid_config("no subnet");
        assert_eq!(e.to_json().to_string(), r#"{"code":7,"msg":"no subnet"}"#);
        let e = e.with_details("range set 0");
        assert_eq!(Error::from_json(&e.to_json()), Some(e));
        assert_eq!(
            Error::from_json(&serde_json::json!({"cniVersion":"1.0.0"})),
            None
        );
    }

    #[test]
    fn document_text_is_what_go_prints() {
        let e = Error::internal("failed to find plugin \"x\" in path [/opt/cni/bin]");
        assert_eq!(
            e.to_json_string(),
            "{\n    \"code\": 999,\n    \"msg\": \"failed to find plugin \\\"x\\\" in path [/opt/cni/bin]\"\n}"
        );
        let e = Error::incompatible_version("incompatible CNI versions")
            .with_details("config is \"9.9.9\", plugin supports <none> & more");
        assert_eq!(
            e.to_json_string(),
            "{\n    \"code\": 1,\n    \"msg\": \"incompatible CNI versions\",\n    \"details\": \"config is \\\"9.9.9\\\", plugin supports \\u003cnone\\u003e \\u0026 more\"\n}"
        );
    }
}
