//! Spec versions and the exact-match rule skel applies (reference §1.6).

/// The spec version this library implements; VERSION answers with it.
pub const CURRENT: &str = "1.1.0";

/// Every version the reference plugins support (`version.All`), oldest first.
pub const ALL: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// A config without `cniVersion` is read as this version.
pub const IMPLICIT: &str = "0.1.0";

/// Compares two dotted versions numerically ("0.10.0" > "0.4.0"). Parts that are not
/// numbers compare as 0, so garbage never panics; exact support is checked separately.
#[must_use]
pub fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a).cmp(&parts(b))
}

/// True when `v` is at least `min` (for "CHECK needs 0.4.0", "GC needs 1.1.0").
#[must_use]
pub fn at_least(v: &str, min: &str) -> bool {
    compare(v, min) != std::cmp::Ordering::Less
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_numerically() {
        assert!(at_least("1.0.0", "0.4.0"));
        assert!(at_least("0.4.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0"));
        assert!(at_least("0.10.0", "0.4.0"));
        assert!(!at_least("garbage", "0.1.0"));
    }
}
