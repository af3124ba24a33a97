//! The error for a text that is none of a closed set's codes, and the one lookup every set's
//! parser shares, so that each code is spelled once, in its `as_str`.

/// A text that is not one of a closed set's codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{code}`")]
pub struct UnknownCode {
    /// What the code was meant to name (`decision`, `delivery status`...).
    pub kind: &'static str,
    /// The text that matched none.
    pub code: String,
}

/// The member of `all` whose code is `s`.
pub fn find<T: Copy>(
    all: &[T],
    code: impl Fn(T) -> &'static str,
    kind: &'static str,
    s: &str,
) -> Result<T, UnknownCode> {
    all.iter().copied().find(|v| code(*v) == s).ok_or_else(|| UnknownCode { kind, code: s.to_owned() })
}
