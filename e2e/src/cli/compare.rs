//! `mirror-e2e compare`: an upgrade walk's runs, each against the one before.

use std::process::ExitCode;

use e2e::report::RunReport;
use mirror_e2e_contract::args::CompareArgs;

pub(crate) fn compare(args: &CompareArgs) -> ExitCode {
    let (out, transient) = (args.out.as_deref(), args.transient);
    let reports: Result<Vec<RunReport>, _> = args.runs.iter().map(|r| RunReport::read(r)).collect();
    let reports = match reports {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let walk = e2e::compare::walk(reports);
    let text = walk.render();
    // The terminal gets the table; the file has each hop's check-by-check detail too, and
    // is named only when it stays.
    match out {
        Some(out) if !transient || walk.failed() => println!(
            "{}(each hop, check by check: {})",
            walk.summary(),
            out.display()
        ),
        Some(_) => print!("{}", walk.summary()),
        None => print!("{text}"),
    }
    if let Some(out) = out {
        let written = std::fs::write(out, &text)
            .and_then(|()| std::fs::write(out.with_extension("md"), walk.markdown()));
        if let Err(e) = written {
            eprintln!("error: write {}: {e}", out.display());
            return ExitCode::from(2);
        }
        e2e::report::append_step_summary(&format!("## Istio upgrade walk\n\n{}", walk.markdown()));
    }
    if walk.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
