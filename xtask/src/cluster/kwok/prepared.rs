//! How a kwok cluster was prepared, recorded in its directory (`prepared`) once a run has
//! prepared it: what configures the node's proxies (`--istiod`) and the Istio release whose
//! CRDs and istiod objects it holds. `--reuse NAME` compares the record with the run before
//! anything is built or started, and refuses a cluster prepared otherwise (exit 2, naming
//! both): a cluster prepared for the translation has istiod's objects without `--istiod
//! real`'s chart values, so a real istiod's proxies wait for SDS for the whole patience.

use std::path::Path;

use anyhow::Context;

use crate::flags::{IstiodMode, Usage};

/// The record's file in the cluster's directory.
const RECORD: &str = "prepared";

/// How a cluster was prepared, or how a run needs it prepared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// What configures the node's proxies.
    pub istiod: IstiodMode,
    /// The Istio release of its CRDs and istiod objects.
    pub istio: String,
}

impl Prepared {
    /// The record in the cluster directory `dir`; None when there is none.
    pub fn read(dir: &Path) -> anyhow::Result<Option<Prepared>> {
        let path = dir.join(RECORD);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        Prepared::parse(&text)
            .map(Some)
            .with_context(|| format!("{}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Prepared> {
        let (mut istiod, mut istio) = (None, None);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match line.split_once('=') {
                Some(("istiod", "real")) => istiod = Some(IstiodMode::Real),
                Some(("istiod", "translation")) => istiod = Some(IstiodMode::Translation),
                Some(("istio", version)) if !version.is_empty() => istio = Some(version.to_owned()),
                _ => {
                    anyhow::bail!("unexpected line `{line}` (expected istiod=MODE, istio=VERSION)")
                }
            }
        }
        Ok(Prepared {
            istiod: istiod.context("no istiod=MODE line")?,
            istio: istio.context("no istio=VERSION line")?,
        })
    }

    /// Records this preparation in the cluster directory `dir` (replacing any earlier one:
    /// a walk's hop prepares the cluster for the next release).
    pub fn record(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(RECORD);
        std::fs::write(
            &path,
            format!("istiod={}\nistio={}\n", self.istiod.name(), self.istio),
        )
        .with_context(|| format!("record the cluster's preparation in {}", path.display()))
    }

    /// `--istiod MODE, Istio VERSION`, for messages.
    pub fn describe(&self) -> String {
        format!("--istiod {}, Istio {}", self.istiod.name(), self.istio)
    }

    /// The command line that runs the suite again on the cluster `name` as it is prepared:
    /// only the flags whose defaults differ from the preparation.
    pub fn reuse_command(&self, name: &str) -> Vec<String> {
        let mut argv = plain_reuse_command(name);
        if self.istiod != IstiodMode::Real {
            argv.extend(["--istiod".to_owned(), self.istiod.name().to_owned()]);
        }
        let default = crate::versions::istio_release(None).map(|r| r.version);
        if default.ok() != Some(self.istio.as_str()) {
            argv.extend(["--istio".to_owned(), self.istio.clone()]);
        }
        argv
    }
}

/// Whether the cluster `name`, prepared as `recorded` says, serves a run that needs
/// `wanted`: a usage error naming both preparations, and the command that reuses it as it
/// is, when not.
pub fn check_reuse(
    name: &str,
    recorded: Option<&Prepared>,
    wanted: &Prepared,
) -> Result<(), Usage> {
    let drop = "or drop --reuse to create a cluster for this run";
    match recorded {
        Some(recorded) if recorded == wanted => Ok(()),
        Some(recorded) => Err(Usage(format!(
            "--reuse {name}: the cluster was prepared for {} and this run asks for {}; reuse it as prepared with `{}`, {drop}",
            recorded.describe(),
            wanted.describe(),
            recorded.reuse_command(name).join(" "),
        ))),
        None => Err(Usage(format!(
            "--reuse {name}: the cluster records no preparation (target/kwok/{name}/{RECORD}: it was kept before its preparation was recorded, or never prepared), so it may not serve {}; delete it with `cargo xtask kwok delete {name}`, {drop}",
            wanted.describe(),
        ))),
    }
}

/// The command line that runs the suite again on the cluster `name` with every default
/// (what a cluster of unrecorded preparation is offered).
pub fn plain_reuse_command(name: &str) -> Vec<String> {
    [
        "cargo",
        "xtask",
        "e2e",
        "--cluster",
        "kwok",
        "--reuse",
        name,
    ]
    .map(str::to_owned)
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(istiod: IstiodMode, istio: &str) -> Prepared {
        Prepared {
            istiod,
            istio: istio.to_owned(),
        }
    }

    #[test]
    fn a_reuse_in_another_mode_is_refused_naming_both_and_the_command_that_fits() {
        let translation = prepared(IstiodMode::Translation, "1.31.1");
        let real = prepared(IstiodMode::Real, "1.31.1");
        let err = check_reuse("kept", Some(&translation), &real)
            .expect_err("another mode")
            .0;
        assert_eq!(
            err,
            "--reuse kept: the cluster was prepared for --istiod translation, Istio 1.31.1 and this run asks for --istiod real, Istio 1.31.1; reuse it as prepared with `cargo xtask e2e --cluster kwok --reuse kept --istiod translation`, or drop --reuse to create a cluster for this run"
        );
        let err = check_reuse("kept", Some(&real), &translation)
            .expect_err("another mode")
            .0;
        assert!(
            err.contains("prepared for --istiod real")
                && err.contains("asks for --istiod translation"),
            "{err}"
        );
        check_reuse("kept", Some(&real), &real).expect("the same preparation");
    }

    #[test]
    fn a_reuse_of_another_release_or_of_an_unrecorded_cluster_is_refused() {
        let old = prepared(IstiodMode::Real, "1.30.5");
        let err = check_reuse("kept", Some(&old), &prepared(IstiodMode::Real, "1.31.1"))
            .expect_err("another release")
            .0;
        assert!(
            err.contains("Istio 1.30.5 and this run asks for --istiod real, Istio 1.31.1")
                && err.contains("--reuse kept --istio 1.30.5`"),
            "{err}"
        );
        let err = check_reuse("kept", None, &old).expect_err("no record").0;
        assert!(
            err.contains("records no preparation") && err.contains("cargo xtask kwok delete kept"),
            "{err}"
        );
    }

    #[test]
    fn the_record_reads_back_and_a_malformed_one_names_its_file() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(Prepared::read(dir.path()).expect("read"), None);
        let translation = prepared(IstiodMode::Translation, "1.29.9");
        translation.record(dir.path()).expect("record");
        assert_eq!(Prepared::read(dir.path()).expect("read"), Some(translation));
        std::fs::write(dir.path().join(RECORD), "istiod=fake\n").expect("write");
        let err = format!("{:#}", Prepared::read(dir.path()).expect_err("malformed"));
        assert!(
            err.contains("prepared: unexpected line `istiod=fake`"),
            "{err}"
        );
    }
}
