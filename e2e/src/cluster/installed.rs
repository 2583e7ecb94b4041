//! The Istio a cluster runs: its istiods found by their labels (with revisions), each one's
//! version (image tag, env or labels) and shadow-host rule, and the refusal to install over
//! someone else's.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};

use super::ClusterError;
use crate::version::{IstioVersion, ShadowRule};

/// The control plane a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledIstiod {
    /// Its namespace (usually istio-system).
    pub namespace: String,
    /// The Deployment: `istiod`, or `istiod-<revision>`.
    pub name: String,
    /// `istio.io/rev`: "default" for an unrevisioned install.
    pub revision: String,
    /// The version.
    pub version: IstioVersion,
    /// Where the version was read (`image tag`, `label app.kubernetes.io/version`, ...).
    pub version_from: &'static str,
    /// Whether mirrored requests' Host carries `-shadow`, by the version or istiod's env.
    pub shadow_rule: ShadowRule,
}

impl InstalledIstiod {
    /// The namespace label that has this control plane inject sidecars:
    /// `istio-injection=enabled` for the default revision, else `istio.io/rev=<rev>`
    /// (Istio's injector webhooks select on exactly these).
    pub fn injection_label(&self) -> (&'static str, String) {
        if self.revision == "default" {
            ("istio-injection", "enabled".into())
        } else {
            ("istio.io/rev", self.revision.clone())
        }
    }
}

/// Finds istiod by its labels, as Istio's charts set them
/// (manifests/charts/istio-control/istio-discovery/templates/deployment.yaml: `app: istiod`,
/// `istio.io/rev: <revision or "default">`, named `istiod` or `istiod-<revision>`). With
/// `revision`, that one; else the default revision, or the only one there is.
pub async fn installed_istio(
    client: &Client,
    revision: Option<&str>,
) -> Result<InstalledIstiod, ClusterError> {
    let found = list_istiods(client).await?;
    let describe = |list: &[&Listed]| {
        list.iter()
            .map(|l| l.describe())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all: Vec<&Listed> = found.iter().collect();
    let pick: Vec<&Listed> = match revision {
        Some(rev) => all.iter().copied().filter(|l| l.revision == rev).collect(),
        None if all.iter().any(|l| l.revision == "default") => all
            .iter()
            .copied()
            .filter(|l| l.revision == "default")
            .collect(),
        None => all.clone(),
    };
    match (pick.as_slice(), revision) {
        ([one], _) => one.istiod().ok_or_else(|| one.unreadable()),
        ([], None) => Err(ClusterError::NoIstio("none found".into())),
        ([], Some(rev)) => Err(ClusterError::NoIstio(format!(
            "no istiod of revision {rev}; found: {}",
            if all.is_empty() {
                "none".to_owned()
            } else {
                describe(&all)
            }
        ))),
        (_, _) => Err(ClusterError::AmbiguousIstio {
            found: describe(&all),
        }),
    }
}

/// Fails when the cluster runs any istiod: `--install-istio` would install this project's
/// IstioOperator over someone else's control plane.
pub async fn refuse_install_over_istio(client: &Client) -> Result<(), ClusterError> {
    let found = list_istiods(client).await?;
    if found.is_empty() {
        return Ok(());
    }
    Err(ClusterError::IstioPresent {
        found: found
            .iter()
            .map(Listed::describe)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// What listing istiod needs: the verb, the resource and where.
const ISTIOD_LIST: (&str, &str, &str) = ("list", "deployments.apps", "all namespaces");

/// Every Deployment labelled `app=istiod`. A refusal is reported as what it is (a 403 on a
/// shared cluster names what the user lacks), never as an absent Istio.
async fn list_istiods(client: &Client) -> Result<Vec<Listed>, ClusterError> {
    let api: Api<Deployment> = Api::all(client.clone());
    let (verb, resource, namespace) = ISTIOD_LIST;
    let found = api
        .list(&kube::api::ListParams::default().labels("app=istiod"))
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if status.code == 403 => ClusterError::Forbidden {
                verb,
                resource,
                namespace: namespace.to_owned(),
                why: "to find istiod by its label app=istiod",
                message: status.message.clone(),
            },
            source => ClusterError::Request {
                what: format!("{verb} {resource} labelled app=istiod in {namespace}"),
                source,
            },
        })?;
    Ok(found.items.iter().map(Listed::of).collect())
}

/// An istiod Deployment as listed: who it is, its version (or why it could not be read),
/// and its shadow-host setting.
struct Listed {
    namespace: String,
    name: String,
    revision: String,
    version: Result<(IstioVersion, &'static str), String>,
    shadow_env: Result<Option<String>, String>,
}

/// The istiod container: `discovery` in Istio's charts, else the first.
fn discovery_container(d: &Deployment) -> Option<&k8s_openapi::api::core::v1::Container> {
    let containers = &d.spec.as_ref()?.template.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == "discovery")
        .or_else(|| containers.first())
}

impl Listed {
    fn of(d: &Deployment) -> Listed {
        let labels = d.metadata.labels.clone().unwrap_or_default();
        let revision = labels
            .get("istio.io/rev")
            .cloned()
            .unwrap_or_else(|| "default".into());
        let container = discovery_container(d);
        let env = |name: &str| -> Result<Option<String>, String> {
            let Some(var) = container
                .and_then(|c| c.env.as_ref())
                .and_then(|env| env.iter().find(|e| e.name == name))
            else {
                return Ok(None);
            };
            match (&var.value, &var.value_from) {
                (_, Some(from)) => Err(format!(
                    "istiod's {name} is set from {}, which the run does not read",
                    describe_env_source(from)
                )),
                (value, None) => Ok(Some(value.clone().unwrap_or_default())),
            }
        };
        Listed {
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            version: istiod_version(container, &labels, &revision, env("ISTIO_VERSION")),
            shadow_env: env(crate::version::DISABLE_SHADOW_HOST_SUFFIX),
            revision,
        }
    }

    /// The error for a version that could not be read.
    fn unreadable(&self) -> ClusterError {
        ClusterError::IstiodVersion {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            tried: self.version.clone().err().unwrap_or_default(),
        }
    }

    fn describe(&self) -> String {
        let version = match &self.version {
            Ok((v, _)) => v.to_string(),
            Err(_) => "version unknown".into(),
        };
        format!(
            "{}/{} (revision {}, {version})",
            self.namespace, self.name, self.revision
        )
    }

    /// The control plane, when its version could be read (else see [`Listed::unreadable`]).
    fn istiod(&self) -> Option<InstalledIstiod> {
        let (version, version_from) = self.version.clone().ok()?;
        Some(InstalledIstiod {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            revision: self.revision.clone(),
            version,
            version_from,
            shadow_rule: ShadowRule::for_istiod(
                version,
                self.shadow_env
                    .as_ref()
                    .map(Option::as_deref)
                    .map_err(Clone::clone),
            ),
        })
    }
}

/// Where an env var's `valueFrom` points, for a message.
fn describe_env_source(from: &k8s_openapi::api::core::v1::EnvVarSource) -> String {
    if let Some(c) = &from.config_map_key_ref {
        format!("ConfigMap {} key {}", c.name, c.key)
    } else if let Some(s) = &from.secret_key_ref {
        format!("Secret {} key {}", s.name, s.key)
    } else if let Some(f) = &from.field_ref {
        format!("field {}", f.field_path)
    } else {
        "a reference".into()
    }
}

/// istiod's version, from the first source that names one: the image tag
/// (`pilot:1.31.1-distroless`), the `ISTIO_VERSION` env of the container, the chart's
/// `app.kubernetes.io/version` and `helm.sh/chart: istiod-<version>` labels (Istio's
/// zzz_profile.yaml `istio.labels`), a revision named after a version (`1-31-1`). When none
/// does, what each said.
fn istiod_version(
    container: Option<&k8s_openapi::api::core::v1::Container>,
    labels: &std::collections::BTreeMap<String, String>,
    revision: &str,
    env: Result<Option<String>, String>,
) -> Result<(IstioVersion, &'static str), String> {
    let parse = |text: &str| -> Option<IstioVersion> {
        text.split('-').next().and_then(|v| v.parse().ok())
    };
    let mut tried = Vec::new();
    match container.and_then(|c| c.image.as_deref()) {
        None => tried.push("no image".to_owned()),
        Some(image) if image.contains('@') => {
            tried.push(format!("image {image} is pinned by digest"));
        }
        Some(image) => {
            let tag = image.rsplit_once(':').map_or("", |(_, t)| t);
            match parse(tag) {
                Some(v) => return Ok((v, "image tag")),
                None => tried.push(format!("image {image} has no version tag")),
            }
        }
    }
    match env {
        Ok(Some(value)) => match parse(&value) {
            Some(v) => return Ok((v, "ISTIO_VERSION")),
            None => tried.push(format!("ISTIO_VERSION={value:?} is no version")),
        },
        Ok(None) => tried.push("no ISTIO_VERSION env".to_owned()),
        Err(why) => tried.push(why),
    }
    match labels.get("app.kubernetes.io/version") {
        Some(value) => match parse(value) {
            Some(v) => return Ok((v, "label app.kubernetes.io/version")),
            None => tried.push(format!(
                "label app.kubernetes.io/version={value:?} is no version"
            )),
        },
        None => tried.push("no app.kubernetes.io/version label".to_owned()),
    }
    match labels.get("helm.sh/chart") {
        Some(chart) => match chart.strip_prefix("istiod-").and_then(parse) {
            Some(v) => return Ok((v, "label helm.sh/chart")),
            None => tried.push(format!(
                "label helm.sh/chart={chart:?} names no istiod version"
            )),
        },
        None => tried.push("no helm.sh/chart label".to_owned()),
    }
    match parse(&revision.replace('-', ".")) {
        Some(v) if revision.split('-').count() == 3 => Ok((v, "revision name")),
        _ => {
            tried.push(format!("revision {revision:?} names no version"));
            Err(tried.join("; "))
        }
    }
}
