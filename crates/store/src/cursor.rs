//! Paging: list methods return a [`Page`] whose [`Cursor`] is an opaque token the backend mints
//! and alone reads back, so no caller depends on how a backend orders or numbers its rows.

/// An opaque position in one list, minted by the backend that listed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// A cursor from its token as a client sent it back (checked only when a list reads it).
    pub fn from_token(token: String) -> Self {
        Cursor(token)
    }

    /// The token, to hand to a client.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of a list and the cursor of the page after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows, in the list's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<Cursor>,
}
