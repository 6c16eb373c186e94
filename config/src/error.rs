//! Config errors: every one names the file, the line (when known) and the key path.

use std::fmt;

/// One problem found in a config file.
///
/// Displays as `file:line: key: message`; the line is left out when unknown (e.g. an I/O error)
/// and the key when the problem concerns the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to [`crate::parse`] or the path given to [`crate::load`].
    pub file: String,
    /// 1-based line of the offending key (or of its nearest enclosing item when the key is
    /// missing).
    pub line: Option<usize>,
    /// Key path such as `tenants[0].routes[3].max-body-size`; empty for whole-file errors.
    pub key: String,
    /// What is wrong, and where helpful what is expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file (never empty when returned as an error).
///
/// Displays one error per line, ordered by line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors {
    /// The collected errors, ordered by line.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_formats() {
        let e = ConfigError {
            file: "g.yaml".into(),
            line: Some(3),
            key: "tenants[0].name".into(),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "g.yaml:3: tenants[0].name: bad");
        let e2 = ConfigError {
            file: "g.yaml".into(),
            line: None,
            key: String::new(),
            message: "cannot read".into(),
        };
        assert_eq!(e2.to_string(), "g.yaml: cannot read");
        let all = ConfigErrors {
            errors: vec![e, e2],
        };
        assert_eq!(
            all.to_string(),
            "g.yaml:3: tenants[0].name: bad\ng.yaml: cannot read"
        );
    }
}
