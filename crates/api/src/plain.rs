//! Deserialization errors in plain words: which field is wrong and what it must be, never a Rust
//! type name. Serde's messages follow fixed forms (`invalid type: …, expected …`, `missing field
//! `x``, …); each form is rewritten here, and messages Herald's own types wrote pass through.

use herald_domain::FieldError;

/// The field error for a serde failure. `root` names where the input sits (`""` for a request
/// body or query, `notifications[2]` for a batch item), `path` is serde_path_to_error's path
/// (`.` for the root, `to[1]`, `channels.email`) and `message` serde's message, without position.
pub(crate) fn field_error(root: &str, path: &str, message: &str) -> FieldError {
    let here = join(root, if path == "." { "" } else { path });
    let (field, message) = if let Some(name) = quoted(message, "missing field `") {
        (join(&here, name), "is required".to_owned())
    } else if let Some(name) = quoted(message, "duplicate field `") {
        (join(&here, name), "is given more than once".to_owned())
    } else if let Some(name) = quoted(message, "unknown field `") {
        // Serde's path usually ends with the unknown field's name already; a check made once an
        // object was read (a field of another kind of device) reports it at the object.
        let field = if here == name || here.ends_with(&format!(".{name}")) { here } else { join(&here, name) };
        (field, "is not a field of this request".to_owned())
    } else if path == "." && (message.starts_with("invalid type: ") || message.starts_with("invalid value: ")) {
        // Inputs are objects, so a wrong value "at the root" is one whose path serde lost (inside
        // an internally tagged enum such as a device): say so rather than blame the whole input.
        (here, format!("has a field that {}", must_be(message)))
    } else {
        (here, must_be(message))
    };
    // An error about the body as a whole has no path; `body` names it.
    FieldError { field: if field.is_empty() { "body".to_owned() } else { field }, message }
}

/// A JSON syntax error (`message` without its position) in plain words.
pub(crate) fn syntax(message: &str) -> &str {
    match message {
        m if m.starts_with("EOF while parsing") => "the JSON ends too early",
        "expected value" => "a JSON value was expected",
        "trailing characters" => "there is more after the JSON value",
        "key must be a string" => "object keys must be strings in double quotes",
        "recursion limit exceeded" => "it is nested too deeply",
        m => m,
    }
}

fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_owned(),
        (_, true) => parent.to_owned(),
        _ if child.starts_with('[') => format!("{parent}{child}"),
        _ => format!("{parent}.{child}"),
    }
}

/// The name in ``prefix`name` …``.
fn quoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split_once('`').map(|(name, _)| name)
}

/// What the value must be, from serde's (or the standard parsers') message about it.
fn must_be(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        // The rejected value comes first and may contain anything; the accepted ones come last.
        return match rest.rsplit_once(", expected ") {
            Some((_, accepted)) => format!("must be {accepted}"),
            None => "is not an accepted value".to_owned(),
        };
    }
    for (prefix, out_of_range) in [("invalid type: ", false), ("invalid value: ", true), ("invalid length ", false)] {
        if let Some((_, expected)) = message.strip_prefix(prefix).and_then(|rest| rest.rsplit_once(", expected ")) {
            return expectation(expected, out_of_range);
        }
    }
    let plain = match message {
        "invalid digit found in string" | "cannot parse integer from empty string" => "must be a whole number",
        "number too large to fit in target type" => "is too large",
        "number too small to fit in target type" => "is too small",
        "invalid float literal" => "must be a number",
        "provided string was not `true` or `false`" => "must be true or false",
        // serde_json's answer to a number, list or null where a name from a fixed list belongs.
        "expected value" => "must be one of its accepted values, as a string",
        m if m.starts_with("UUID parsing failed") => "must be a UUID",
        m if m.starts_with("data did not match any variant") => "does not have any of the accepted shapes",
        m => m,
    };
    plain.to_owned()
}

/// "must be …" for serde's `expected …`, which is English or a Rust type name.
fn expectation(expected: &str, out_of_range: bool) -> String {
    if let Some((min, max)) = integer_range(expected) {
        return if out_of_range {
            format!("must be a whole number from {min} to {max}")
        } else {
            "must be a whole number".to_owned()
        };
    }
    let plain = match expected {
        "a string" | "a borrowed string" | "a character" | "char" => "must be a string",
        "a boolean" => "must be true or false",
        "a sequence" => "must be a list",
        "a map" => "must be a JSON object",
        "f32" | "f64" => "must be a number",
        "unit" => "must be null",
        e if e.contains("UUID") || e.ends_with("Uuid") => "must be a UUID",
        e if e.starts_with("struct ") || e.contains("tagged enum ") => "must be a JSON object",
        e if e.starts_with("enum ") || e.ends_with(" identifier") => "must be one of its accepted values",
        e if e.starts_with("tuple") => "has the wrong number of items",
        // A bare identifier (`Option`, `serde_json::Value`) is a type name, not words.
        e if !e.contains(' ') || e.contains("::") => "has the wrong type",
        e => return format!("must be {e}"),
    };
    plain.to_owned()
}

/// The range of a Rust integer type, by name.
fn integer_range(name: &str) -> Option<(i128, u128)> {
    Some(match name {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX as u128),
        "i16" => (i16::MIN.into(), i16::MAX as u128),
        "i32" => (i32::MIN.into(), i32::MAX as u128),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX as u128),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(root: &str, path: &str, message: &str) -> (String, String) {
        let e = field_error(root, path, message);
        (e.field, e.message)
    }

    #[test]
    fn serde_forms_become_field_paths_and_words() {
        let cases = [
            ("", "to[1]", "invalid type: integer `7`, expected a string", "to[1]", "must be a string"),
            ("", "data", "invalid type: string \"x\", expected a map", "data", "must be a JSON object"),
            ("", ".", "missing field `template`", "template", "is required"),
            ("", "channels.email", "missing field `subject`", "channels.email.subject", "is required"),
            (
                "",
                "colour",
                "unknown field `colour`, expected one of `template`, `to`",
                "colour",
                "is not a field of this request",
            ),
            ("", "n", "invalid type: string \"x\", expected u32", "n", "must be a whole number"),
            ("", "n", "invalid value: integer `-1`, expected u32", "n", "must be a whole number from 0 to 4294967295"),
            (
                "",
                ".",
                "invalid length 1, expected struct NotificationRequest with 12 elements",
                "body",
                "must be a JSON object",
            ),
            (
                "",
                "channels[0]",
                "unknown variant `fax`, expected `in_app` or `push`",
                "channels[0]",
                "must be `in_app` or `push`",
            ),
            ("", "kind", "expected value", "kind", "must be one of its accepted values, as a string"),
            ("", "limit", "invalid digit found in string", "limit", "must be a whole number"),
            ("", "unread", "provided string was not `true` or `false`", "unread", "must be true or false"),
            ("", ".", "duplicate field `limit`", "limit", "is given more than once"),
            (
                "notifications[2]",
                "to",
                "invalid type: integer `1`, expected a sequence",
                "notifications[2].to",
                "must be a list",
            ),
            ("", ".", "invalid type: integer `5`, expected a string", "body", "has a field that must be a string"),
            ("notifications[2]", "template", "missing field `x`", "notifications[2].template.x", "is required"),
            ("notifications[2]", ".", "missing field `template`", "notifications[2].template", "is required"),
            ("", "id", "invalid type: integer `5`, expected a formatted UUID string", "id", "must be a UUID"),
            (
                "",
                "e",
                "invalid type: integer `5`, expected internally tagged enum DeviceSpec",
                "e",
                "must be a JSON object",
            ),
            ("", "to", "invalid type: integer `5`, expected a list of user ids", "to", "must be a list of user ids"),
            ("", "x", "invalid type: map, expected Option", "x", "has the wrong type"),
            (
                "",
                "user_id",
                "a user id must be 1 to 128 characters",
                "user_id",
                "a user id must be 1 to 128 characters",
            ),
        ];
        for (root, path, message, field, words) in cases {
            assert_eq!(said(root, path, message), (field.to_owned(), words.to_owned()), "{message}");
        }
    }

    #[test]
    fn the_rejected_value_cannot_fool_the_parser() {
        let (_, words) = said("", "c", "unknown variant `a, expected `x``, expected `in_app` or `push`");
        assert_eq!(words, "must be `in_app` or `push`");
        let (_, words) = said("", "n", "invalid type: string \", expected f64\", expected u32");
        assert_eq!(words, "must be a whole number");
    }

    #[test]
    fn syntax_errors_read_as_words() {
        assert_eq!(syntax("EOF while parsing an object"), "the JSON ends too early");
        assert_eq!(syntax("expected `:`"), "expected `:`");
    }
}
