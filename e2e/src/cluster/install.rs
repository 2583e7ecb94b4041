//! Installing cluster-wide prerequisites a provider hands over (Istio's CRDs from its
//! release, a kwok cluster's node): every document server-side applied, CRDs first and
//! awaited until Established, so the documents after them meet a server that serves them.
//!
//! The suite's own manifests never come through here: they go into the run's namespace
//! through [`super::ClusterMesh::deploy`]. xtask decides what is installed; this only applies.

use std::time::{Duration, Instant};

use kube::Client;
use serde_json::Value;

use super::apply::{Applier, ApplyError, apply_order};
use super::ready;
use crate::manifest::{ManifestSet, YamlPath};

/// Errors installing prerequisites; each names the file and line of the document involved.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file could not be read or parsed.
    #[error("{0}")]
    Manifests(String),
    /// The server rejected a document, or does not serve its kind.
    #[error("{file}:{line}: {source}")]
    Apply {
        /// The document's file.
        file: String,
        /// The line of its `kind`.
        line: usize,
        /// What the server said.
        #[source]
        source: ApplyError,
    },
    /// A CRD did not become Established in time, or watching it failed.
    #[error(transparent)]
    NotEstablished(#[from] ready::ReadyError),
}

/// What an install did.
#[derive(Debug)]
pub struct Installed {
    /// Documents applied.
    pub objects: usize,
    /// CRDs among them, each awaited until Established.
    pub crds: usize,
}

/// Applies every document of `set`: namespaced ones into their own `metadata.namespace`
/// (else `default_namespace`), CRDs first and each awaited until Established (within
/// `patience`), then the rest in [`apply_order`].
pub async fn install(
    client: &Client,
    set: &ManifestSet,
    default_namespace: &str,
    patience: Duration,
) -> Result<Installed, InstallError> {
    if let Some(e) = set.syntax_errors.first() {
        return Err(InstallError::Manifests(e.to_string()));
    }
    let mut order: Vec<usize> = (0..set.documents.len()).collect();
    order.sort_by_key(|&i| {
        let kind = set.documents[i].kind();
        (kind != "CustomResourceDefinition", apply_order(kind))
    });
    let crds: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| set.documents[i].kind() == "CustomResourceDefinition")
        .collect();
    let mut appliers: Vec<(String, Applier)> = Vec::new();
    let started = Instant::now();
    let mut established = crds.is_empty();
    for &index in &order {
        let doc = &set.documents[index];
        if !established && doc.kind() != "CustomResourceDefinition" {
            for &crd in &crds {
                let name = set.documents[crd].name().to_owned();
                ready::crd_established(client, &name, patience.saturating_sub(started.elapsed()))
                    .await?;
            }
            established = true;
            // What discovery saw before the CRDs were served is stale now.
            for (_, applier) in &mut appliers {
                applier
                    .rediscover()
                    .await
                    .map_err(|source| place(set, index, source))?;
            }
        }
        let namespace = doc
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(default_namespace)
            .to_owned();
        let position = appliers.iter().position(|(ns, _)| *ns == namespace);
        let applier = match position {
            Some(i) => &appliers[i].1,
            None => {
                let applier = Applier::new(client.clone(), &namespace)
                    .await
                    .map_err(|source| place(set, index, source))?;
                appliers.push((namespace, applier));
                &appliers[appliers.len() - 1].1
            }
        };
        applier
            .apply(index, &doc.value)
            .await
            .map_err(|source| place(set, index, source))?;
    }
    Ok(Installed {
        objects: order.len(),
        crds: crds.len(),
    })
}

fn place(set: &ManifestSet, index: usize, source: ApplyError) -> InstallError {
    let doc = &set.documents[index];
    InstallError::Apply {
        file: doc.file.display().to_string(),
        line: doc.line_of(&YamlPath::parse("kind")),
        source,
    }
}
