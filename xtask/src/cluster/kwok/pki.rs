//! The kwok cluster's certificates and keys, and its private kubeconfig.
//!
//! One CA signs the API server's serving certificate (also kwok's, for the kubelet-style
//! endpoint the API server reads pod logs from) and the admin's client certificate (group
//! `system:masters`, as kubeadm's admin.conf). Service-account tokens get a key of their
//! own. Keys are written owner-only.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Where each file of the PKI is, under the cluster's directory.
pub struct PkiFiles {
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub service_account_key: PathBuf,
    /// Its public half: the API server verifies tokens with it (it reads public keys only).
    pub service_account_pub: PathBuf,
}

impl PkiFiles {
    pub fn in_dir(dir: &Path) -> PkiFiles {
        PkiFiles {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("serving.crt"),
            serving_key: dir.join("serving.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            service_account_key: dir.join("service-account.key"),
            service_account_pub: dir.join("service-account.pub"),
        }
    }

    /// Generates a new CA and everything it signs, and writes it here.
    pub fn generate(&self) -> anyhow::Result<()> {
        let ca_key = KeyPair::generate().context("generate the CA key")?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
        ca.distinguished_name
            .push(DnType::CommonName, "mirror-e2e-kwok-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca.self_signed(&ca_key).context("sign the CA")?;
        let issuer = Issuer::new(ca, ca_key);

        // The names the API server is reached by: from this host inside the run's network
        // namespace, and from pods (the `kubernetes` Service's first address).
        let (serving_cert, serving_key) = leaf(
            &[
                "localhost",
                "127.0.0.1",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            &[(DnType::CommonName, "kube-apiserver")],
            ExtendedKeyUsagePurpose::ServerAuth,
            &issuer,
        )
        .context("the serving certificate")?;
        let (admin_cert, admin_key) = leaf(
            &[],
            &[
                (DnType::CommonName, "kubernetes-admin"),
                (DnType::OrganizationName, "system:masters"),
            ],
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        )
        .context("the admin certificate")?;

        let service_account_key =
            KeyPair::generate().context("generate the service-account key")?;

        write(&self.ca_cert, &ca_cert.pem(), false)?;
        write(&self.serving_cert, &serving_cert.pem(), false)?;
        write(&self.serving_key, &serving_key.serialize_pem(), true)?;
        write(&self.admin_cert, &admin_cert.pem(), false)?;
        write(&self.admin_key, &admin_key.serialize_pem(), true)?;
        write(
            &self.service_account_key,
            &service_account_key.serialize_pem(),
            true,
        )?;
        write(
            &self.service_account_pub,
            &service_account_key.public_key_pem(),
            false,
        )?;
        Ok(())
    }

    /// A kubeconfig for the admin at `server`, naming the files (never the user's config).
    pub fn kubeconfig(&self, cluster: &str, server: &str) -> String {
        let context = format!("kwok-{cluster}");
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: {context}
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {context}-admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: {context}
  context:
    cluster: {context}
    user: {context}-admin
current-context: {context}
",
            ca = self.ca_cert.display(),
            cert = self.admin_cert.display(),
            key = self.admin_key.display(),
        )
    }
}

/// A new key and a certificate for it, signed by `issuer`.
fn leaf(
    names: &[&str],
    subject: &[(DnType, &str)],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate().context("generate a key")?;
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).context("certificate parameters")?;
    for (kind, value) in subject {
        params.distinguished_name.push(kind.clone(), *value);
    }
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).context("sign")?;
    Ok((cert, key))
}

/// Writes `text` to `path`; a secret is readable by its owner only, from its creation on.
pub fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pki_is_written_with_private_keys_readable_by_the_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = PkiFiles::in_dir(dir.path());
        files.generate().expect("generate");
        for cert in [&files.ca_cert, &files.serving_cert, &files.admin_cert] {
            let text = std::fs::read_to_string(cert).expect("read");
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");
        }
        #[cfg(unix)]
        for key in [
            &files.serving_key,
            &files.admin_key,
            &files.service_account_key,
        ] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key).expect("stat").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", key.display());
        }
        let config = files.kubeconfig("e2e", "https://127.0.0.1:6443");
        assert!(config.contains("current-context: kwok-e2e"));
        assert!(config.contains(&files.admin_key.display().to_string()));
    }
}
