//! `gatehouse import-gatekeeper FILE [--out FILE] [-- ARGS...]`: converts a Keycloak Gatekeeper
//! / gogatekeeper configuration into a gatehouse one.
//!
//! FILE is a Gatekeeper config file (a YAML mapping) or a YAML list of its command-line
//! arguments (a Kubernetes container's `args:`; a `--config=PATH` among them is read first,
//! relative to FILE's folder when not found as given). ARGS after `--` override FILE as
//! Gatekeeper's own command line overrides its config file. The gatehouse config goes to stdout
//! (or `--out`); every option that could not be carried over, every changed behaviour and
//! every replaced secret goes to stderr. Secrets are never copied: the output reads them from
//! `${ENV}` references. The output is validated as `gatehouse check` would (with placeholder
//! values for its references) before it is written.

mod convert;
mod headers;
mod notes;
mod options;
mod routes;
#[cfg(test)]
mod tests;
mod values;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use notes::{Kind, Notes};

/// The result of a conversion: the gatehouse config text and the notes for stderr.
pub struct Imported {
    /// The gatehouse YAML.
    pub yaml: String,
    /// What could not be carried over or changed.
    pub notes: Notes,
}

/// Converts Gatekeeper `text` (from `source`, for the header comment) with `args` applied.
/// `read_config` loads a `--config` file named by an argument list.
pub fn import(
    text: &str,
    source: &str,
    args: &[String],
    read_config: &dyn Fn(&str) -> Option<String>,
) -> Result<Imported, String> {
    let mut notes = Notes::default();
    let (mut opts, config) = options::read(text, &mut notes)?;
    if let Some(path) = config {
        match read_config(&path) {
            Some(base_text) => {
                let (base, _) = options::read(&base_text, &mut notes)?;
                // The argument list's own flags apply over the file they name.
                let mut merged = base;
                merged.overlay(opts);
                opts = merged;
            }
            None => notes.not_carried(
                "config",
                &format!("{path} was not found: its options are not in the output"),
                Some("import that file as FILE, with these arguments after --"),
            ),
        }
    }
    if let Some(path) = opts.apply_args(args, &mut notes) {
        notes.not_carried(
            "config",
            &format!("--config={path} after -- is not read"),
            Some("pass the config file as FILE"),
        );
    }
    let value = convert::convert(&opts, &mut notes);
    let body = serde_yaml::to_string(&value).map_err(|e| format!("writing YAML: {e}"))?;
    let yaml = format!(
        "# gatehouse config converted by `gatehouse import-gatekeeper` from {source}.\n\
         # What could not be carried over was listed on stderr; docs/import-gatekeeper.md has the mapping.\n\
         {body}"
    );
    Ok(Imported { yaml, notes })
}

/// Checks the output as `gatehouse check` does (certificate files aside: they live where the
/// gateway runs), with a placeholder for every `${VAR}`.
pub fn validate(yaml: &str) -> Result<(), String> {
    // Valid for every kind of value a reference may stand for here (a 32-byte base64 key).
    let placeholder = |_: &str| Some("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=".to_string());
    let config =
        gatehouse_config::parse(yaml, "output", &placeholder).map_err(|e| e.to_string())?;
    gatehouse_policy::snapshot::Snapshot::compile(&config).map_err(|e| e.to_string())?;
    Ok(())
}

/// The CLI command: reads `file`, writes the config to `out` or stdout, notes to stderr.
/// Exit 0 on success, 1 when FILE cannot be read or the output does not validate.
pub fn run(file: &Path, out: Option<&PathBuf>, args: &[String]) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::from(1);
        }
    };
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let read_config = |p: &str| {
        std::fs::read_to_string(p)
            .or_else(|_| {
                let name = Path::new(p).file_name().unwrap_or_default();
                std::fs::read_to_string(dir.join(name))
            })
            .ok()
    };
    let imported = match import(&text, &file.display().to_string(), args, &read_config) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::from(1);
        }
    };
    for note in &imported.notes.items {
        eprintln!("import-gatekeeper: {note}");
    }
    let valid = validate(&imported.yaml);
    let written = match out {
        Some(path) => {
            std::fs::write(path, &imported.yaml).map_err(|e| format!("{}: {e}", path.display()))
        }
        None if crate::print_out(&imported.yaml) == ExitCode::SUCCESS => Ok(()),
        None => return ExitCode::from(1),
    };
    if let Err(e) = written {
        eprintln!("{e}");
        return ExitCode::from(1);
    }
    let counts = [Kind::NotCarried, Kind::Changed, Kind::Secret, Kind::Unknown]
        .map(|k| imported.notes.of(k).count());
    eprintln!(
        "import-gatekeeper: {} option(s) not carried, {} changed behaviour(s), {} secret reference(s), {} unknown option(s)",
        counts[0], counts[1], counts[2], counts[3]
    );
    match valid {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("import-gatekeeper: the output does not validate (fix it by hand):\n{e}");
            ExitCode::from(1)
        }
    }
}
