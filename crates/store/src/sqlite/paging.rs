//! The SQLite backend's cursors: base64url (no padding) of `list|owner|position`, where the list
//! tag and the owner (the user, notification or topic whose rows are listed) let a cursor be read
//! back only by the list that minted it, and the position is the last row's key in that list.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::cursor::{Cursor, Page};
use crate::{StoreError, StoreResult};

/// The lists that page, each with the tag its cursors carry.
#[derive(Debug, Clone, Copy)]
pub(super) enum List {
    /// A user's audit trail, by audit seq (newest first).
    Timeline,
    /// Dead letters, by delivery rowid (newest first).
    DeadLetters,
    /// Address blocks, by rowid (oldest first).
    AddressBlocks,
    /// A notification's recipients, by recipient seq.
    Recipients,
    /// A topic's subscribers, by user id.
    Subscribers,
    /// A user's inbox, by inbox seq (newest first).
    Inbox,
}

impl List {
    /// The tag cursors of this list carry.
    fn tag(self) -> &'static str {
        match self {
            List::Timeline => "timeline",
            List::DeadLetters => "dead_letters",
            List::AddressBlocks => "address_blocks",
            List::Recipients => "recipients",
            List::Subscribers => "subscribers",
            List::Inbox => "inbox",
        }
    }

    /// A cursor at `position` in this list of `owner`'s rows.
    pub(super) fn mint(self, owner: &str, position: &str) -> Cursor {
        Cursor::from_token(URL_SAFE_NO_PAD.encode(format!("{}|{owner}|{position}", self.tag())))
    }

    /// The position `cursor` holds, when this list of `owner`'s rows minted it.
    pub(super) fn position(self, cursor: &Cursor, owner: &str) -> StoreResult<String> {
        let text = URL_SAFE_NO_PAD
            .decode(cursor.as_str())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(StoreError::BadCursor)?;
        // Owners (user ids, topic keys, uuids) never hold `|`; a position may.
        let mut parts = text.splitn(3, '|');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(tag), Some(of), Some(position)) if tag == self.tag() && of == owner => Ok(position.to_owned()),
            _ => Err(StoreError::BadCursor),
        }
    }

    /// A cursor at row number `seq` in this list of `owner`'s rows.
    pub(super) fn mint_seq(self, owner: &str, seq: i64) -> Cursor {
        self.mint(owner, &seq.to_string())
    }

    /// The row number `cursor` holds, when this list of `owner`'s rows minted it; `None` without one.
    pub(super) fn seq(self, cursor: Option<&Cursor>, owner: &str) -> StoreResult<Option<i64>> {
        cursor.map(|c| self.position(c, owner)?.parse().map_err(|_| StoreError::BadCursor)).transpose()
    }

    /// As [`page`], for rows read with their row number in this list of `owner`'s rows, which
    /// only the cursor keeps.
    pub(super) fn page_by_seq<T>(self, rows: Vec<(i64, T)>, limit: u32, owner: &str) -> Page<T> {
        let Page { items, next } = page(rows, limit, |(seq, _)| self.mint_seq(owner, *seq));
        Page { items: items.into_iter().map(|(_, row)| row).collect(), next }
    }
}

/// How many rows to read for a page of `limit`: one more, to learn whether a next page exists.
pub(super) fn fetch(limit: u32) -> i64 {
    i64::from(limit) + 1
}

/// The page of at most `limit` of `rows` (read with [`fetch`]), with a cursor at its last row
/// when more rows follow, so the last page says it is the last.
pub(super) fn page<T>(mut rows: Vec<T>, limit: u32, at: impl Fn(&T) -> Cursor) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(at) } else { None };
    Page { items: rows, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_only_in_the_list_and_owner_that_minted_it() {
        let c = List::Timeline.mint_seq("ada", 42);
        assert_eq!(List::Timeline.seq(Some(&c), "ada").unwrap(), Some(42));
        assert!(matches!(List::Timeline.seq(Some(&c), "bob"), Err(StoreError::BadCursor)));
        assert!(matches!(List::Inbox.seq(Some(&c), "ada"), Err(StoreError::BadCursor)));
        let garbage = Cursor::from_token("not base64!".into());
        assert!(matches!(List::Timeline.seq(Some(&garbage), "ada"), Err(StoreError::BadCursor)));
    }

    #[test]
    fn only_a_page_with_more_rows_after_it_has_a_next_cursor() {
        let full = page(vec![1, 2, 3], 2, |n| List::Inbox.mint_seq("", *n));
        assert_eq!(full.items, [1, 2]);
        assert_eq!(full.next, Some(List::Inbox.mint_seq("", 2)));
        let last = page(vec![1, 2], 2, |n| List::Inbox.mint_seq("", *n));
        assert_eq!((last.items.len(), last.next), (2, None));
    }
}
