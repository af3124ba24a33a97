//! Validation errors: every field problem found at the boundary, reported together.

use serde::Serialize;

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path of the offending field, e.g. `channels.email.html`.
    pub field: String,
    /// Human readable explanation.
    pub message: String,
}

/// All the problems found in one input; empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("validation failed: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// An error list with a single entry.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![FieldError { field: field.into(), message: message.into() }])
    }

    /// Records one problem.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    /// Records the outcome of a parse, keeping the value when it succeeded.
    pub fn check<T>(&mut self, result: Result<T, ValidationErrors>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e.0);
                None
            }
        }
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
