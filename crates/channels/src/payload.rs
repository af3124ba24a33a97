//! Size rules shared by the push channels: a payload must fit the provider's limit (4 KB for
//! APNs, FCM and web push), so the body is shortened, never cutting a UTF-8 character in two.

/// The ellipsis that marks a shortened body.
const ELLIPSIS: char = '…';

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Renders the payload with `body`, shortening the body (with an ellipsis) until the rendering
/// fits in `limit` bytes; `None` when even an empty body does not fit.
pub fn fit_body(body: &str, limit: usize, render: impl Fn(&str) -> Vec<u8>) -> Option<Vec<u8>> {
    let full = render(body);
    if full.len() <= limit {
        return Some(full);
    }
    // Binary search on the kept byte length: the rendering grows with it (JSON escaping included).
    let (mut lo, mut hi) = (0usize, body.len());
    let mut best = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let mut cut = truncate_utf8(body, mid).to_owned();
        cut.push(ELLIPSIS);
        let out = render(&cut);
        if out.len() <= limit {
            best = Some(out);
            lo = mid + 1;
        } else if mid == 0 {
            break;
        } else {
            hi = mid - 1;
        }
    }
    best.or_else(|| Some(render("")).filter(|o| o.len() <= limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn never_splits_a_character() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("ok", 10), "ok");
    }

    proptest! {
        #[test]
        fn fitted_payloads_fit_and_keep_a_prefix(body in "\\PC{0,3000}", limit in 40usize..4096) {
            let render = |b: &str| serde_json::to_vec(&serde_json::json!({"aps": {"alert": {"title": "t", "body": b}}})).unwrap();
            if let Some(out) = fit_body(&body, limit, render) {
                prop_assert!(out.len() <= limit);
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                let kept = v["aps"]["alert"]["body"].as_str().unwrap();
                let kept = kept.strip_suffix(ELLIPSIS).unwrap_or(kept);
                prop_assert!(body.starts_with(kept));
            }
        }
    }
}
