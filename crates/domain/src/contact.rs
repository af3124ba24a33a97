//! Contact details validated on construction: email addresses, E.164 phones, IANA time zones, locales.

use serde::{Deserialize, Serialize};

use crate::error::ValidationErrors;

/// An email address, syntactically checked (one `@`, a dotted domain, no spaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an address such as `ana@example.com`.
    pub fn parse(field: &str, s: &str) -> Result<Self, ValidationErrors> {
        let bad = || ValidationErrors::single(field, "must be an email address like ana@example.com");
        let s = s.trim();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c)) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let domain_ok = domain.len() >= 3
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `@`, lower-cased.
    pub fn domain(&self) -> String {
        self.0.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default()
    }
}

/// A phone number in E.164 form: `+` then 8 to 15 digits, the first not zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Parses `+15551234567`; spaces, dashes and national formats are refused.
    pub fn parse(field: &str, s: &str) -> Result<Self, ValidationErrors> {
        let digits = s.strip_prefix('+').unwrap_or("");
        let ok =
            (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationErrors::single(field, "must be an E.164 phone number like +15551234567"))
        }
    }

    /// The number with its leading `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone name known to the bundled tz database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Parses `Europe/Paris`, `Asia/Kolkata`, `UTC`...
    pub fn parse(field: &str, s: &str) -> Result<Self, ValidationErrors> {
        match jiff::tz::TimeZone::get(s) {
            Ok(_) if !s.is_empty() => Ok(Self(s.to_owned())),
            _ => Err(ValidationErrors::single(field, format!("`{s}` is not an IANA time zone name"))),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The zone itself; UTC if the database no longer knows it.
    pub fn zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.0).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

/// A BCP 47 language tag such as `fr` or `pt-BR` (syntax only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Locale(String);

impl Locale {
    /// Parses a tag: subtags of 1..8 alphanumerics separated by `-` or `_`, starting with letters.
    pub fn parse(field: &str, s: &str) -> Result<Self, ValidationErrors> {
        let mut parts = s.split(['-', '_']);
        let lang_ok =
            parts.next().is_some_and(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
        let rest_ok = parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if lang_ok && rest_ok && s.len() <= 35 {
            Ok(Self(s.replace('_', "-")))
        } else {
            Err(ValidationErrors::single(field, "must be a language tag like en, fr or pt-BR"))
        }
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language subtag, lower-cased: `pt` for `pt-BR`.
    pub fn language(&self) -> String {
        self.0.split('-').next().unwrap_or_default().to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(Email::parse("email", "ana@example.com").is_ok());
        assert!(Email::parse("email", "a.b+tag@sub.example.co.uk").is_ok());
        for bad in ["", "ana", "ana@", "@example.com", "ana@example", "a na@example.com", "ana@.com", "a@b..c"] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
        assert_eq!(Email::parse("email", "x@Example.COM").unwrap().domain(), "example.com");
    }

    #[test]
    fn phones() {
        assert!(Phone::parse("phone", "+15551234567").is_ok());
        assert!(Phone::parse("phone", "+447911123456").is_ok());
        for bad in
            ["15551234567", "+1 555 123 4567", "+0123456789", "+1234567", "+1234567890123456", "+1555abc4567", ""]
        {
            assert!(Phone::parse("phone", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones() {
        assert!(TimeZoneName::parse("timezone", "Europe/Paris").is_ok());
        assert!(TimeZoneName::parse("timezone", "Asia/Kolkata").is_ok());
        assert!(TimeZoneName::parse("timezone", "UTC").is_ok());
        assert!(TimeZoneName::parse("timezone", "Mars/Olympus_Mons").is_err());
        assert!(TimeZoneName::parse("timezone", "").is_err());
    }

    #[test]
    fn locales() {
        assert_eq!(Locale::parse("locale", "pt_BR").unwrap().as_str(), "pt-BR");
        assert_eq!(Locale::parse("locale", "pt-BR").unwrap().language(), "pt");
        assert!(Locale::parse("locale", "fr").is_ok());
        assert!(Locale::parse("locale", "x").is_err());
        assert!(Locale::parse("locale", "en--US").is_err());
        assert!(Locale::parse("locale", "12").is_err());
    }
}
