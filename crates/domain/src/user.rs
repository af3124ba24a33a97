//! Users: the people Herald notifies, with their validated contact details.

use serde::{Deserialize, Deserializer, Serialize};

use crate::contact::{Email, Locale, Phone, TimeZoneName};
use crate::error::ValidationErrors;
use crate::ids::UserId;

/// A user's profile as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Producer-chosen id.
    pub id: UserId,
    /// Email address, when known.
    pub email: Option<Email>,
    /// E.164 phone, when known.
    pub phone: Option<Phone>,
    /// IANA time zone used for quiet hours.
    pub timezone: Option<TimeZoneName>,
    /// Preferred locale for templates.
    pub locale: Option<Locale>,
    /// Display name.
    pub name: Option<String>,
    /// Free-form data available to templates as `user.data`.
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl User {
    /// A user known only by id: no contacts, inbox only.
    pub fn bare(id: UserId) -> Self {
        Self { id, email: None, phone: None, timezone: None, locale: None, name: None, data: Default::default() }
    }

    /// The `user` object templates see. Unknown fields are left out rather than set to null, so a
    /// template using one fails strictly (or falls back with `default`) instead of printing "none".
    pub fn template_context(&self) -> serde_json::Value {
        let mut ctx = serde_json::Map::new();
        ctx.insert("id".into(), self.id.as_str().into());
        ctx.insert("data".into(), serde_json::Value::Object(self.data.clone()));
        let optional = [
            ("name", self.name.as_deref()),
            ("email", self.email.as_ref().map(Email::as_str)),
            ("phone", self.phone.as_ref().map(Phone::as_str)),
            ("locale", self.locale.as_ref().map(Locale::as_str)),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                ctx.insert(key.into(), v.into());
            }
        }
        serde_json::Value::Object(ctx)
    }
}

/// Deserializes a field that distinguishes "absent" (`None`) from "null" (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The body of `PUT /v1/users/{id}`: omitted fields stay as they are, `null` clears.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Email address.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// E.164 phone number.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// IANA time zone.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    /// Locale such as `fr` or `pt-BR`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<Option<String>>,
    /// Display name.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// Free-form data (replaces the previous object when given).
    #[serde(default)]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
}

impl UserInput {
    /// Validates every field and applies them to `user`; on error `user` is untouched.
    pub fn apply(&self, user: &User) -> Result<User, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let mut next = user.clone();
        fn field<T>(
            errs: &mut ValidationErrors,
            slot: &mut Option<T>,
            input: &Option<Option<String>>,
            parse: impl Fn(&str) -> Result<T, ValidationErrors>,
        ) {
            match input {
                None => {}
                Some(None) => *slot = None,
                Some(Some(s)) => {
                    if let Some(v) = errs.check(parse(s)) {
                        *slot = Some(v);
                    }
                }
            }
        }
        field(&mut errs, &mut next.email, &self.email, |s| Email::parse("email", s));
        field(&mut errs, &mut next.phone, &self.phone, |s| Phone::parse("phone", s));
        field(&mut errs, &mut next.timezone, &self.timezone, |s| TimeZoneName::parse("timezone", s));
        field(&mut errs, &mut next.locale, &self.locale, |s| Locale::parse("locale", s));
        field(&mut errs, &mut next.name, &self.name, |s| {
            if s.chars().count() > 200 {
                Err(ValidationErrors::single("name", "must be at most 200 characters"))
            } else {
                Ok(s.to_owned())
            }
        });
        if let Some(data) = &self.data {
            next.data = data.clone();
        }
        errs.into_result(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User::bare(UserId::parse("id", "u1").unwrap())
    }

    #[test]
    fn omitted_keeps_null_clears() {
        let set: UserInput = serde_json::from_str(r#"{"email":"a@example.com","phone":"+15551234567"}"#).unwrap();
        let u = set.apply(&user()).unwrap();
        let clear: UserInput = serde_json::from_str(r#"{"email":null}"#).unwrap();
        let u2 = clear.apply(&u).unwrap();
        assert!(u2.email.is_none());
        assert_eq!(u2.phone.as_ref().unwrap().as_str(), "+15551234567");
    }

    #[test]
    fn all_errors_are_reported_and_nothing_changes() {
        let bad: UserInput =
            serde_json::from_str(r#"{"email":"nope","phone":"555","timezone":"Nowhere/City"}"#).unwrap();
        let err = bad.apply(&user()).unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "phone", "timezone"]);
    }

    #[test]
    fn templates_see_only_known_fields() {
        let ctx = user().template_context();
        assert_eq!(ctx, serde_json::json!({"id": "u1", "data": {}}));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<UserInput>(r#"{"emial":"a@example.com"}"#).is_err());
    }
}
