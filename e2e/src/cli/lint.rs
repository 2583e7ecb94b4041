//! `mirror-e2e lint`: the offline analysis, printed as text or JSON.

use std::process::ExitCode;

use e2e::lint::{Severity, lint_with_expectations};
use mirror_e2e_contract::args::{LintArgs, LintFormat};

pub(crate) fn lint(args: &LintArgs) -> ExitCode {
    match lint_with_expectations(&args.paths, args.expectations.as_deref()) {
        Ok(findings) => {
            match args.format {
                LintFormat::Text => {
                    for f in &findings {
                        println!("{f}");
                    }
                }
                LintFormat::Json => match serde_json::to_string_pretty(&findings) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("error: findings as JSON: {e}");
                        return ExitCode::from(2);
                    }
                },
            }
            let errors = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            let warnings = findings.len() - errors;
            eprintln!(
                "lint: {}, {}",
                e2e::report::plural(errors, "error", "errors"),
                e2e::report::plural(warnings, "warning", "warnings")
            );
            if errors > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
