//! Configuration errors: every problem found, each with its place.

use std::fmt;
use std::path::PathBuf;

/// One problem with a configuration: where (`vip[1] "api": backend[2] (10.1.0.12): weight`)
/// and what, phrased so that a person can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The place: a table/field path, or `line L, column C` for TOML syntax errors.
    pub place: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(place: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { place: place.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.place, self.message) }
    }
}

/// Every problem found in one configuration (never empty when returned as an error).
/// Displayed one error per line, each prefixed by the file name when known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors {
    /// The file the configuration came from, if any.
    pub file: Option<PathBuf>,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn single(place: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigErrors { file: None, errors: vec![ConfigError::new(place, message)] }
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// The file these errors refer to (used as a prefix of every line).
    pub fn with_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// One line per error, as printed by `l4lb check`.
    pub fn lines(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|e| match &self.file {
                Some(f) => format!("{}: {e}", f.display()),
                None => e.to_string(),
            })
            .collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

/// Collects errors during validation.
#[derive(Default)]
pub(crate) struct Errors {
    pub(crate) list: Vec<ConfigError>,
}

impl Errors {
    pub(crate) fn push(&mut self, place: &str, field: &str, message: impl Into<String>) {
        let place = match (place.is_empty(), field.is_empty()) {
            (true, _) => field.to_string(),
            (false, true) => place.to_string(),
            (false, false) => format!("{place}: {field}"),
        };
        self.list.push(ConfigError::new(place, message));
    }

    pub(crate) fn into_result(self) -> Result<(), ConfigErrors> {
        if self.list.is_empty() { Ok(()) } else { Err(ConfigErrors { file: None, errors: self.list }) }
    }
}
