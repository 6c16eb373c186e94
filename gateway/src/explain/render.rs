//! A [`Report`] for people (aligned text, one line per step and check) and for machines (JSON:
//! `{"request": {...}, "steps": [{"step", "outcome", "summary", "checks": [...]}],
//! "verdict": {"allowed", "action", "status", "reason", "summary"}}`).

use std::fmt::Write;

use super::{Outcome, Report};

fn mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Info => "    ",
    }
}

/// The report as text.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let r = &report.request;
    let _ = writeln!(out, "request   {} {} from {}", r.method, r.url, r.from);
    if !r.headers.is_empty() {
        let _ = writeln!(out, "headers   {}", r.headers.join(", "));
    }
    for step in &report.steps {
        let _ = writeln!(
            out,
            "{:<13} {}  {}",
            step.step,
            mark(step.outcome),
            step.summary
        );
        for c in &step.checks {
            let mut line = format!("    {:<15} {}", c.name, mark(c.outcome));
            if let Some(expected) = &c.expected {
                let _ = write!(line, "  expected {expected}");
            }
            if let Some(got) = &c.got {
                let _ = write!(line, "  got {got}");
            }
            if !c.detail.is_empty() {
                let sep = if c.expected.is_some() || c.got.is_some() {
                    ": "
                } else {
                    "  "
                };
                let _ = write!(line, "{sep}{}", c.detail);
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    let v = &report.verdict;
    let status = v
        .status
        .map_or_else(|| "the upstream's".to_string(), |s| s.to_string());
    let _ = writeln!(
        out,
        "verdict       {}  {} (status {status}, reason {})",
        if v.allowed { "ALLOW" } else { "DENY " },
        v.summary,
        v.reason
    );
    out
}

/// The report as JSON.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
