//! Strict loading: every key in the file and every `HERALD_` variable must be a setting; each
//! problem names the key, where it was set and, when one is close, the key that was meant.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::error::Kind;
use figment::value::Value;
use serde::Deserialize;

use super::Config;

/// `HERALD_` variables that are not configuration keys but are read by the binary itself: the
/// file to load, the admin API key (kept out of files on purpose), the CLI's server, the log
/// filter. Any other `HERALD_` variable must name a key.
pub const ENV_ONLY: [&str; 4] = ["HERALD_CONFIG", "HERALD_API_KEY", "HERALD_URL", "HERALD_LOG"];

/// The prefix of the variables that override keys.
pub(super) const ENV_PREFIX: &str = "HERALD_";

/// Most problems reported at once.
const MAX_PROBLEMS: usize = 20;

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` (or `HERALD_CONFIG`) names a file that is not there.
    #[error("configuration file {} does not exist", .0.display())]
    NoFile(PathBuf),
    /// What reading the file and the environment found: unknown keys, values of the wrong type,
    /// a file that is not TOML.
    #[error("invalid configuration:{}", list(.0))]
    Read(Vec<Problem>),
    /// A setting whose value is not allowed.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn list(problems: &[Problem]) -> String {
    match problems {
        [one] => format!(" {one}"),
        many => many.iter().map(|p| format!("\n  {p}")).collect(),
    }
}

/// Where a key was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The configuration file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
}

/// One thing wrong in the file or the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A key that is not a setting (a typo, or a setting of another section).
    UnknownKey {
        /// Its full dotted path, e.g. `channels.email.smpt`.
        path: Vec<String>,
        /// Where it was set, when known.
        source: Option<Source>,
        /// The known key at that level it is most likely a misspelling of.
        suggestion: Option<&'static str>,
        /// The known keys at that level.
        known: &'static [&'static str],
    },
    /// A value Herald cannot read: the wrong type, a missing field, a file that is not TOML.
    Value {
        /// The key's dotted path (empty for the file as a whole).
        path: Vec<String>,
        /// Where it was set, when known.
        source: Option<Source>,
        /// What is wrong.
        message: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::UnknownKey { path, source, suggestion, known } => {
                let dotted = path.join(".");
                match source {
                    Some(Source::File(file)) => write!(f, "unknown key `{dotted}` in {}", file.display())?,
                    Some(Source::Env(var)) => {
                        write!(f, "unknown environment variable {var} (`{dotted}` is not a setting)")?
                    }
                    None => write!(f, "unknown key `{dotted}`")?,
                }
                match (suggestion, source) {
                    (Some(s), Some(Source::Env(var))) => {
                        write!(f, "; did you mean `{s}` ({})?", env_var_with(var, path.len().saturating_sub(1), s))
                    }
                    (Some(s), _) => write!(f, "; did you mean `{s}`?"),
                    (None, Some(Source::Env(_)))
                        if path.len() == 1 && known.iter().any(|k| path[0].starts_with(&format!("{k}_"))) =>
                    {
                        write!(f, "; levels are separated by a double underscore, e.g. HERALD_CHANNELS__EMAIL__FROM")
                    }
                    (None, _) => write!(f, " (keys here: {})", known.join(", ")),
                }
            }
            Problem::Value { path, source, message } => match (source, path.is_empty()) {
                (Some(Source::Env(var)), _) => write!(f, "{var}: {message}"),
                (Some(Source::File(file)), true) => write!(f, "{}: {message}", file.display()),
                (Some(Source::File(file)), false) => write!(f, "`{}` in {}: {message}", path.join("."), file.display()),
                (None, true) => write!(f, "{message}"),
                (None, false) => write!(f, "`{}`: {message}", path.join(".")),
            },
        }
    }
}

/// `var` with its level `level` (after the prefix) replaced by `key`.
fn env_var_with(var: &str, level: usize, key: &str) -> String {
    let mut levels: Vec<String> = var[ENV_PREFIX.len()..].split("__").map(str::to_owned).collect();
    if let Some(l) = levels.get_mut(level) {
        *l = key.to_ascii_uppercase();
    }
    format!("{ENV_PREFIX}{}", levels.join("__"))
}

/// The known key `unknown` is most likely a misspelling of: a few edits away, or `unknown`
/// followed by a suffix (`timeout` for `timeout_seconds`).
fn closest(unknown: &str, known: &'static [&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (*k, strsim::damerau_levenshtein(unknown, k)))
        .filter(|(k, d)| *d <= (k.len().max(unknown.len()) / 3).max(1) || k.starts_with(&format!("{unknown}_")))
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

/// The sources besides the defaults, to say where a key was set.
pub(super) struct Sources<'a> {
    pub(super) file: Option<(&'a Path, Figment)>,
}

impl Sources<'_> {
    /// Every source that sets `path`: environment variables first (they override the file); the
    /// file alone for the empty path (the file as a whole).
    fn of(&self, path: &[String]) -> Vec<Source> {
        let var = format!("{ENV_PREFIX}{}", path.join("__")).to_ascii_uppercase();
        let mut vars: Vec<String> = env_names()
            .filter(|name| {
                let upper = name.to_ascii_uppercase();
                !path.is_empty() && (upper == var || upper.starts_with(&format!("{var}__")))
            })
            .collect();
        vars.sort();
        let mut found: Vec<Source> = vars.into_iter().map(Source::Env).collect();
        if let Some((file, fig)) = &self.file
            && (path.is_empty() || fig.find_value(&path.join(".")).is_ok())
        {
            found.push(Source::File(file.to_path_buf()));
        }
        found
    }

    fn unknown(&self, path: &[String], known: &'static [&'static str]) -> Vec<Problem> {
        let suggestion = path.last().and_then(|key| closest(key, known));
        let problem = |source| Problem::UnknownKey { path: path.to_vec(), source, suggestion, known };
        match self.of(path) {
            sources if sources.is_empty() => vec![problem(None)],
            sources => sources.into_iter().map(|s| problem(Some(s))).collect(),
        }
    }

    fn value(&self, e: &figment::Error) -> Problem {
        Problem::Value {
            path: e.path.clone(),
            source: self.of(&e.path).into_iter().next(),
            message: e.kind.to_string(),
        }
    }
}

/// Names of the environment's variables (those that are valid Unicode).
fn env_names() -> impl Iterator<Item = String> {
    std::env::vars_os().filter_map(|(k, _)| k.into_string().ok())
}

/// `HERALD_` variables that cannot name a key because a level is empty (`HERALD_CHANNELS____X`,
/// a trailing `__`); the environment provider would drop them without a word.
fn malformed_env() -> Vec<Problem> {
    env_names()
        .filter(|name| {
            let upper = name.to_ascii_uppercase();
            upper.starts_with(ENV_PREFIX)
                && !ENV_ONLY.contains(&upper.as_str())
                && upper[ENV_PREFIX.len()..].split("__").any(|level| level.trim().is_empty())
        })
        .map(|name| Problem::Value {
            path: Vec::new(),
            source: Some(Source::Env(name)),
            message: "names no setting: a level between `__` separators is empty".into(),
        })
        .collect()
}

/// Removes the key at `path` from `value`; false when there is none.
fn remove(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut at = value;
    for key in parents {
        match at {
            Value::Dict(_, dict) => match dict.get_mut(key) {
                Some(next) => at = next,
                None => return false,
            },
            _ => return false,
        }
    }
    match at {
        Value::Dict(_, dict) => dict.remove(last).is_some(),
        _ => false,
    }
}

/// Reads the merged sources into a [`Config`], reporting every problem: each key that is not a
/// setting or has a bad value is noted, removed, and the rest read again.
pub(super) fn read(fig: &Figment, sources: &Sources) -> Result<Config, ConfigError> {
    let mut value = fig.find_value("").map_err(|e| ConfigError::Read(vec![sources.value(&e)]))?;
    let mut problems = malformed_env();
    loop {
        let e = match Config::deserialize(&value) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => break,
            Err(e) => e,
        };
        match e.kind {
            Kind::UnknownField(_, known) => problems.extend(sources.unknown(&e.path, known)),
            _ => problems.push(sources.value(&e)),
        }
        if problems.len() >= MAX_PROBLEMS || !remove(&mut value, &e.path) {
            break;
        }
    }
    Err(ConfigError::Read(problems))
}
