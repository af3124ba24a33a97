//! The error of every fallible step, so that `main` can print one line and exit non-zero.

/// What stopped a run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A request could not be made or its answer not read.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// Herald answered something other than success during setup.
    #[error("{what} answered {status}: {body}")]
    Status {
        /// The call, e.g. `PUT /v1/templates/bench_social`.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The storage reference failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The JSON summary could not be written.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}
