//! Generated cases against the real istiod: each case of `--generated N --seed S` runs as a
//! variant; one that differs is shrunk to a smallest case that still differs, and written
//! as a case file that reproduces it (`cargo xtask parity --manifests <file>`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::Client;
use tokio::sync::Mutex;

use super::generate::{self, Case};
use super::{Outcome, ParityError, ParityOptions, Session, Variant};

/// How many runs shrinking one case may take (each is a variant against istiod, about half
/// a second).
const SHRINK_STEPS: usize = 40;

/// The name of case `index` of `seed`.
pub fn case_name(seed: u64, index: usize) -> String {
    format!("generated-{seed}-{index}")
}

/// Runs case `index` of `seed`; a difference is shrunk and its case file written under
/// `cases`, whose path the outcome's first line names.
pub async fn run_case(
    client: &Client,
    session: &Arc<Mutex<Session>>,
    seed: u64,
    index: usize,
    opts: &ParityOptions,
    cases: &Path,
) -> Result<Outcome, ParityError> {
    let case = generate::generate(seed, index);
    let name = case_name(seed, index);
    let outcome = run(client, session, &name, &case, opts).await?;
    let Outcome::Differs(differences) = outcome else {
        return Ok(outcome);
    };
    let last = Arc::new(Mutex::new(differences.clone()));
    let (smallest, steps) = generate::shrink(
        case,
        |candidate: Case| {
            let last = last.clone();
            let name = format!("{name}-shrink");
            async move {
                match run(client, session, &name, &candidate, opts).await {
                    Ok(Outcome::Differs(found)) => {
                        *last.lock().await = found;
                        true
                    }
                    // A candidate istiod or local mode cannot take, or a failure, is not the
                    // same difference: shrinking keeps the larger case.
                    _ => false,
                }
            }
        },
        SHRINK_STEPS,
    )
    .await;
    let found = last.lock().await.clone();
    let file = write_case(cases, &smallest, seed, index, &found)?;
    let mut lines = vec![format!(
        "shrunk in {steps} runs to {} (the differences of the smallest case follow)",
        file.display()
    )];
    lines.extend(found);
    Ok(Outcome::Differs(lines))
}

async fn run(
    client: &Client,
    session: &Arc<Mutex<Session>>,
    name: &str,
    case: &Case,
    opts: &ParityOptions,
) -> Result<Outcome, ParityError> {
    let variant = Variant::from_text(name, case.to_yaml());
    session.lock().await.run(client, &variant, opts).await
}

fn write_case(
    dir: &Path,
    case: &Case,
    seed: u64,
    index: usize,
    differences: &[String],
) -> Result<PathBuf, ParityError> {
    let file = dir.join(format!("{}.yaml", case_name(seed, index)));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&file, generate::case_file(case, seed, index, differences)))
        .map_err(|e| ParityError::Manifests(format!("write {}: {e}", file.display())))?;
    Ok(file)
}
