//! `mirror-e2e parity` (istiod's routes against the translation, one Istio version) and
//! `mirror-e2e parity-table` (the versions' results as one table).

use std::path::PathBuf;
use std::process::ExitCode;

use e2e::exit::Exit;
use mirror_e2e_contract::args::ParityArgs;

use super::{client, istio_version, runtime};

/// How long each wait of a parity run takes unless told.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) fn parity(args: &ParityArgs) -> ExitCode {
    let istio = istio_version(args.istio.as_deref());
    let variants = match load_variants(args) {
        Ok(variants) => variants,
        Err(code) => return code,
    };
    if variants.is_empty() && args.generated == 0 {
        eprintln!("error: nothing to compare: give --manifests, --variants or --generated");
        return ExitCode::from(2);
    }
    if args.generated > 0 {
        eprintln!(
            "parity: {} generated cases of seed {} (replay one: cargo xtask parity --istio {} --generated N --seed {})",
            args.generated, args.seed, istio, args.seed
        );
    }
    let Some(runtime) = runtime() else {
        return Exit::Environment.into();
    };
    let opts = e2e::parity::ParityOptions {
        envoy: args.envoy.clone(),
        istiod: e2e::cluster::node_agent::ads::Istiod {
            xds: args.istiod_xds,
            debug: args.istiod_debug,
        },
        istio,
        dir: args.out.clone(),
        patience: args.patience.unwrap_or(PATIENCE),
    };
    let started = std::time::Instant::now();
    let rows = runtime.block_on(async {
        let client = client(Some(&args.kubeconfig), None).await?;
        let generated = e2e::parity::Generated {
            count: args.generated,
            seed: args.seed,
        };
        e2e::parity::run(&client, &variants, generated, &opts)
            .await
            .map_err(|e| e.to_string())
    });
    match rows {
        Ok(rows) => {
            let result = e2e::parity::VersionResult::new(
                &istio,
                args.version_label.clone(),
                rows,
                started.elapsed().as_secs_f64(),
            );
            // The counts and what is not the same; the table goes to parity.md only, so
            // `cargo xtask parity`, which prints the table of every version, prints it once.
            print!("{}", e2e::parity::run_summary(&result));
            let table = e2e::parity::merged_table(std::slice::from_ref(&result));
            let _ = std::fs::write(args.out.join("parity.md"), &table);
            // The machine-readable form, for `mirror-e2e parity-table` to merge versions.
            let json = args.out.join("parity.json");
            let written = serde_json::to_string_pretty(&result)
                .map_err(|e| e.to_string())
                .and_then(|text| std::fs::write(&json, text).map_err(|e| e.to_string()));
            if let Err(e) = written {
                eprintln!("error: write {}: {e}", json.display());
                return Exit::Environment.into();
            }
            // A difference is a finding, to fix in the translation or to list in docs/parity.md
            // as known with its reason: either way a run that finds one fails.
            if result.differs() {
                eprintln!("error: istiod and the translation differ (see the table)");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment.into()
        }
    }
}

/// The variants `--manifests` and `--variants` name, loaded; on failure, the exit code
/// (the error said).
fn load_variants(args: &ParityArgs) -> Result<Vec<e2e::parity::Variant>, ExitCode> {
    let mut variants = Vec::new();
    for path in &args.manifests {
        let name = if path.file_name().is_some_and(|n| n == "manifests") {
            "shipped".to_owned()
        } else {
            path.display().to_string()
        };
        match e2e::parity::Variant::load(&name, None, std::slice::from_ref(path)) {
            Ok(v) => variants.push(v),
            Err(e) => {
                eprintln!("error: --manifests {}: {e}", path.display());
                return Err(ExitCode::from(2));
            }
        }
    }
    if let Some(dir) = &args.variants {
        let base = dir.join("base.yaml");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml") && *p != base)
                .collect(),
            Err(e) => {
                eprintln!("error: {}: {e}", dir.display());
                return Err(ExitCode::from(2));
            }
        };
        files.sort();
        for file in files {
            let name = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            match e2e::parity::Variant::load(&name, Some(&base), &[file]) {
                Ok(v) => variants.push(v),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Err(ExitCode::from(2));
                }
            }
        }
    }
    Ok(variants)
}

pub(crate) fn parity_table(files: &[PathBuf], out: Option<&std::path::Path>) -> ExitCode {
    let mut results = Vec::new();
    for file in files {
        let read = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<e2e::parity::VersionResult>(&text).map_err(|e| e.to_string())
            });
        match read {
            Ok(result) => results.push(result),
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    }
    let table = e2e::parity::merged_table(&results);
    println!("{table}");
    if let Some(out) = out
        && let Err(e) = std::fs::write(out, &table)
    {
        eprintln!("error: write {}: {e}", out.display());
        return Exit::Environment.into();
    }
    let differing: Vec<String> = results
        .iter()
        .filter(|r| r.differs())
        .map(|r| r.column())
        .collect();
    if !differing.is_empty() {
        eprintln!(
            "error: istiod and the translation differ for {} (see the table)",
            differing.join(", ")
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
