//! HTTPS for `catalyst server`: the cluster CA (kept in the store, so every API server of a
//! cluster shares it), each server's own serving certificate signed by it, or certificates the
//! operator brings; the rustls config that serves them, and the CA's pin for join tokens.
//!
//! Files in the data dir: `ca.crt` (the CA clients trust, also served at `GET /cacerts`),
//! `server.crt` + `server.key` (owner-only) and `server.json` (what the certificate was made
//! for: when the names, the CA or the expiry no longer fit, it is made again).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// Where the cluster CA (certificate and key, PEM) lives in the store.
pub const CA_KEY: &str = "/_catalyst/tls/ca";
/// The SHA-256 (hex) of the CA the servers on a store serve under (their clients and join
/// tokens pin it): the first TLS server records it, later ones must serve under the same CA.
pub const PIN_KEY: &str = "/_catalyst/tls/pin";
/// How long a generated CA is valid.
const CA_DAYS: i64 = 3650;
/// How long a generated serving certificate is valid.
const SERVING_DAYS: i64 = 365;
/// A serving certificate this close to its end is made again at start.
const RENEW_DAYS: i64 = 30;

/// How the server does TLS; mirrors `catalyst server`'s flags.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// `--insecure-http`: plain HTTP (loopback listen addresses only).
    pub insecure_http: bool,
    /// `--tls-san`: extra names or IPs for the generated serving certificate.
    pub sans: Vec<String>,
    /// `--tls-cert`: a PEM chain to serve instead of a generated one (leaf first).
    pub cert: Option<PathBuf>,
    /// `--tls-key`: the key of `cert`.
    pub key: Option<PathBuf>,
    /// `--tls-ca`: the CA clients should trust with `cert` (default: the chain's last
    /// certificate).
    pub ca: Option<PathBuf>,
    /// `--tls-replace-pin`: serve under this CA although the store records another one (a CA
    /// change: every client and nodelet must then get the new CA).
    pub replace_pin: bool,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `--insecure-http` with a listen address beyond this machine.
    #[error("--insecure-http is allowed only on a loopback listen address, not {0}")]
    InsecureNotLoopback(SocketAddr),
    /// `--tls-cert` without `--tls-key` or the other way round.
    #[error("--tls-cert and --tls-key go together")]
    CertWithoutKey,
    /// A certificate or key file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// PEM that holds no certificate or key, or a malformed one.
    #[error("{what}: {message}")]
    Pem {
        /// Which file or record.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// Making a certificate.
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA record in the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA record in the store is not one this version reads.
    #[error("the cluster CA in the store ({CA_KEY}) is malformed: {0}")]
    Record(String),
    /// This server's CA is not the one the other servers on the store serve under.
    #[error("this server's CA (sha256 {ours}) is not the one the servers on this store serve under (sha256 {stored}, {PIN_KEY}): clients and nodelets that trust that one would refuse this server. Give every server the same CA (--tls-ca, or no --tls-cert for the cluster CA), or pass --tls-replace-pin to change the CA of all of them")]
    PinMismatch {
        /// The recorded CA's SHA-256.
        stored: String,
        /// This server's CA's SHA-256.
        ours: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The cluster CA as kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaRecord {
    /// Format version (1).
    pub version: u32,
    /// The CA's subject common name (unique per cluster).
    pub common_name: String,
    /// The CA certificate, PEM.
    pub cert: String,
    /// The CA's private key, PEM.
    pub key: String,
}

/// What the server serves and clients trust.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The rustls config of the listener.
    pub config: Arc<rustls::ServerConfig>,
    /// The CA clients trust (one certificate, PEM): `ca.crt`, `/cacerts`, admin.yaml.
    pub ca_pem: String,
    /// SHA-256 of the CA certificate's DER, hex: the join token's pin.
    pub ca_sha256: String,
}

/// The certificates of a PEM text, in order.
///
/// Fails with [`TlsError::Pem`] when it holds none or a malformed one.
pub fn certs_from_pem(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: what.to_owned(),
            message: "no CERTIFICATE in it".into(),
        });
    }
    Ok(certs)
}

fn key_from_pem(what: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

/// SHA-256 of a certificate's DER, hex.
pub fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One certificate as PEM.
pub fn der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// The SHA-256 of the cluster CA kept in the store (the join token's pin), if there is one.
///
/// # Errors
/// The store's, a malformed record.
pub async fn stored_ca_sha256(store: &Arc<dyn Store>) -> Result<Option<String>, TlsError> {
    let Some(kv) = store.get(CA_KEY).await? else {
        return Ok(None);
    };
    let ca = decode_record(&kv.value)?;
    let der = certs_from_pem("the cluster CA", ca.cert.as_bytes())?.remove(0);
    Ok(Some(sha256_hex(&der)))
}

/// The SHA-256 of the first certificate of a PEM text.
///
/// # Errors
/// [`TlsError::Pem`].
pub fn pem_sha256(what: &str, pem: &[u8]) -> Result<String, TlsError> {
    Ok(sha256_hex(&certs_from_pem(what, pem)?.remove(0)))
}

/// The join token as written to `<data-dir>/join-token`: `K10<CA sha256>::<secret>` (k3s's
/// format), or the bare secret without a CA (plain HTTP).
pub fn pinned_join_token(ca_sha256: Option<&str>, secret: &str) -> String {
    match ca_sha256 {
        Some(h) => format!("K10{h}::{secret}"),
        None => secret.to_owned(),
    }
}

/// The secret of a join token, with or without its `K10<hash>::` pin.
pub fn join_token_secret(token: &str) -> &str {
    match token.strip_prefix("K10").and_then(|t| t.split_once("::")) {
        Some((_, secret)) => secret,
        None => token,
    }
}

/// The names a generated serving certificate carries: the listen IP (unless a wildcard),
/// loopback, `localhost`, the host name and `extra`, without duplicates.
pub fn default_sans(listen: SocketAddr, host_name: Option<&str>, extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = Vec::new();
    let mut add = |s: String| {
        let s = s.trim().to_owned();
        if !s.is_empty() && !sans.iter().any(|x| x.eq_ignore_ascii_case(&s)) {
            sans.push(s);
        }
    };
    if !listen.ip().is_unspecified() {
        add(listen.ip().to_string());
    }
    add(IpAddr::V4(Ipv4Addr::LOCALHOST).to_string());
    add(IpAddr::V6(Ipv6Addr::LOCALHOST).to_string());
    add("localhost".into());
    if let Some(h) = host_name
        .map(str::trim)
        .filter(|h| rustls_pki_types::ServerName::try_from(*h).is_ok())
    {
        add(h.to_lowercase());
    }
    for e in extra {
        add(e.clone());
    }
    sans
}

/// This machine's host name, if it has one.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Catalyst");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// A new cluster CA.
pub fn generate_ca() -> Result<CaRecord, TlsError> {
    let common_name = format!(
        "catalyst-ca@{}",
        time::OffsetDateTime::now_utc().unix_timestamp()
    );
    let key = KeyPair::generate()?;
    let mut params = ca_params(&common_name);
    validity(&mut params, CA_DAYS);
    let cert = params.self_signed(&key)?;
    Ok(CaRecord {
        version: 1,
        common_name,
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The cluster CA: the one in the store, else a new one put there (create-if-absent, so
/// servers starting together on one store agree on one CA).
pub async fn cluster_ca(store: &Arc<dyn Store>) -> Result<CaRecord, TlsError> {
    if let Some(kv) = store.get(CA_KEY).await? {
        return decode_record(&kv.value);
    }
    let ca = generate_ca()?;
    let value = serde_json::to_vec(&ca).expect("the CA record encodes");
    match store.create(CA_KEY, &value).await {
        Ok(_) => {
            tracing::info!(ca = ca.common_name, "made the cluster CA");
            Ok(ca)
        }
        Err(StoreError::AlreadyExists { .. }) => {
            let kv = store
                .get(CA_KEY)
                .await?
                .ok_or_else(|| TlsError::Record("vanished after it was created".into()))?;
            decode_record(&kv.value)
        }
        Err(e) => Err(e.into()),
    }
}

fn decode_record(value: &[u8]) -> Result<CaRecord, TlsError> {
    let ca: CaRecord =
        serde_json::from_slice(value).map_err(|e| TlsError::Record(e.to_string()))?;
    if ca.version != 1 {
        return Err(TlsError::Record(format!("unknown version {}", ca.version)));
    }
    Ok(ca)
}

/// What `server.json` records about the serving certificate.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ServingMeta {
    sans: Vec<String>,
    ca_sha256: String,
    not_after: i64,
}

/// A serving certificate for `sans` signed by `ca`: (certificate chain PEM, key PEM).
pub fn generate_serving(ca: &CaRecord, sans: &[String]) -> Result<(String, String), TlsError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::new(ca_params(&ca.common_name), ca_key);
    let mut params = CertificateParams::new(sans.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Catalyst");
    dn.push(DnType::CommonName, "catalyst-apiserver");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, SERVING_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The serving certificate in `data_dir` (`server.crt`, `server.key`), made again when it was
/// made for other names or another CA, or is about to expire.
pub fn ensure_serving(
    data_dir: &Path,
    ca: &CaRecord,
    sans: &[String],
) -> Result<(String, String), TlsError> {
    let (crt, key, meta) = (
        data_dir.join("server.crt"),
        data_dir.join("server.key"),
        data_dir.join("server.json"),
    );
    let ca_der = certs_from_pem("the cluster CA", ca.cert.as_bytes())?;
    let ca_sha256 = sha256_hex(&ca_der[0]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let current = std::fs::read(&meta)
        .ok()
        .and_then(|b| serde_json::from_slice::<ServingMeta>(&b).ok());
    if let (Some(m), Ok(c), Ok(k)) = (
        current,
        std::fs::read_to_string(&crt),
        std::fs::read_to_string(&key),
    ) {
        if m.sans == sans && m.ca_sha256 == ca_sha256 && m.not_after - now > RENEW_DAYS * 86_400 {
            return Ok((c, k));
        }
    }
    let (c, k) = generate_serving(ca, sans)?;
    write_file(&crt, c.as_bytes(), 0o644)?;
    write_file(&key, k.as_bytes(), 0o600)?;
    let m = ServingMeta {
        sans: sans.to_vec(),
        ca_sha256,
        not_after: now + SERVING_DAYS * 86_400,
    };
    write_file(
        &meta,
        &serde_json::to_vec_pretty(&m).expect("meta encodes"),
        0o644,
    )?;
    tracing::info!(sans = ?sans, "made the serving certificate");
    Ok((c, k))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The rustls provider every TLS config of Catalyst uses (ring; never the process default,
/// so nothing depends on one being installed).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server config serving `chain` (PEM, leaf first) with `key` (PEM), speaking
/// HTTP/2 and HTTP/1.1.
pub fn server_config(chain: &[u8], key: &[u8]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = certs_from_pem("the serving certificate", chain)?;
    let key = key_from_pem("the serving key", key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Sets TLS up for a server listening on `listen` with its state in `data_dir`: `None` for
/// `--insecure-http` (on loopback only), else the served config and the CA, written to
/// `<data-dir>/ca.crt`.
///
/// # Errors
/// [`TlsError::InsecureNotLoopback`], [`TlsError::CertWithoutKey`], unreadable or malformed
/// certificate files, a store failure.
pub async fn prepare(
    config: &TlsConfig,
    data_dir: &Path,
    listen: SocketAddr,
    store: &Arc<dyn Store>,
) -> Result<Option<ServerTls>, TlsError> {
    if config.insecure_http {
        if !listen.ip().is_loopback() {
            return Err(TlsError::InsecureNotLoopback(listen));
        }
        return Ok(None);
    }
    let (chain, key, ca_der) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => {
            let chain = std::fs::read(cert).map_err(io(cert))?;
            let key = std::fs::read(key).map_err(io(key))?;
            let ca_der = match &config.ca {
                Some(ca) => {
                    let pem = std::fs::read(ca).map_err(io(ca))?;
                    certs_from_pem(&ca.display().to_string(), &pem)?.remove(0)
                }
                None => certs_from_pem(&cert.display().to_string(), &chain)?
                    .pop()
                    .expect("at least one certificate"),
            };
            (chain, key, ca_der)
        }
        (None, None) => {
            let ca = cluster_ca(store).await?;
            let sans = default_sans(listen, host_name().as_deref(), &config.sans);
            let (chain, key) = ensure_serving(data_dir, &ca, &sans)?;
            let ca_der = certs_from_pem("the cluster CA", ca.cert.as_bytes())?.remove(0);
            (chain.into_bytes(), key.into_bytes(), ca_der)
        }
        _ => return Err(TlsError::CertWithoutKey),
    };
    let ca_sha256 = sha256_hex(&ca_der);
    check_pin(store, &ca_sha256, config.replace_pin).await?;
    let ca_pem = der_to_pem(&ca_der);
    write_file(&data_dir.join("ca.crt"), ca_pem.as_bytes(), 0o644)?;
    Ok(Some(ServerTls {
        config: server_config(&chain, &key)?,
        ca_sha256,
        ca_pem,
    }))
}

/// Records `ours` as the store's CA pin when there is none (or `replace`), else checks it is
/// the recorded one.
async fn check_pin(store: &Arc<dyn Store>, ours: &str, replace: bool) -> Result<(), TlsError> {
    loop {
        let Some(kv) = store.get(PIN_KEY).await? else {
            match store.create(PIN_KEY, ours.as_bytes()).await {
                Ok(_) => return Ok(()),
                // another server recorded one first: check against it
                Err(StoreError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let stored = String::from_utf8_lossy(&kv.value).trim().to_owned();
        if stored == ours {
            return Ok(());
        }
        if !replace {
            return Err(TlsError::PinMismatch {
                stored,
                ours: ours.to_owned(),
            });
        }
        match store
            .update(PIN_KEY, ours.as_bytes(), kv.mod_revision)
            .await
        {
            Ok(_) => {
                tracing::warn!(old = stored, new = ours, "the store's CA pin replaced");
                return Ok(());
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `GET /cacerts` (no authentication, as in k3s): the CA PEM, so a joining node can fetch it
/// and check it against its join token's pin.
pub fn routes(ca_pem: Option<Arc<str>>) -> Router {
    Router::new().route(
        "/cacerts",
        get(move || {
            let ca = ca_pem.clone();
            async move {
                match ca {
                    Some(pem) => (
                        [(header::CONTENT_TYPE, "application/x-pem-file")],
                        pem.to_string(),
                    )
                        .into_response(),
                    None => crate::error::ApiError::NotFound {
                        kind: "path".into(),
                        name: "/cacerts (this server speaks plain HTTP)".into(),
                    }
                    .into_response(),
                }
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{ServerName, UnixTime};

    /// Whether `chain` verifies for `name` against `ca` alone.
    fn verifies(ca: &str, chain: &str, name: &str) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs_from_pem("ca", ca.as_bytes()).unwrap() {
            roots.add(c).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            crypto_provider(),
        )
        .build()
        .unwrap();
        let certs = certs_from_pem("chain", chain.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &certs[0],
                &certs[1..],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    fn listen(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_names_are_the_listen_ip_loopback_localhost_the_host_and_extras() {
        let sans = default_sans(
            listen("10.1.2.3:7443"),
            Some("Box-1"),
            &["api.example.com".into(), "localhost".into()],
        );
        assert_eq!(
            sans,
            [
                "10.1.2.3",
                "127.0.0.1",
                "::1",
                "localhost",
                "box-1",
                "api.example.com"
            ]
        );
        // a wildcard address names no host; a host name that is no DNS name is left out
        let sans = default_sans(listen("0.0.0.0:1"), Some("bad name!"), &[]);
        assert_eq!(sans, ["127.0.0.1", "::1", "localhost"]);
    }

    #[test]
    fn the_serving_certificate_is_signed_by_the_ca_for_every_name_and_no_other() {
        let ca = generate_ca().unwrap();
        let sans = default_sans(
            listen("10.1.2.3:7443"),
            Some("box"),
            &["api.example".into()],
        );
        let (chain, _key) = generate_serving(&ca, &sans).unwrap();
        for name in [
            "10.1.2.3",
            "127.0.0.1",
            "::1",
            "localhost",
            "box",
            "api.example",
        ] {
            assert!(verifies(&ca.cert, &chain, name), "{name}");
        }
        assert!(!verifies(&ca.cert, &chain, "10.9.9.9"));
        assert!(!verifies(&ca.cert, &chain, "evil.example"));
        // another CA does not vouch for it
        let other = generate_ca().unwrap();
        assert!(!verifies(&other.cert, &chain, "localhost"));
    }

    #[test]
    fn the_serving_certificate_is_kept_until_its_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let ca = generate_ca().unwrap();
        let sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let (first, _) = ensure_serving(dir.path(), &ca, &sans).unwrap();
        let (again, _) = ensure_serving(dir.path(), &ca, &sans).unwrap();
        assert_eq!(first, again, "same names: the same certificate");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is the owner's only");

        let more = vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "n1".to_owned(),
        ];
        let (changed, _) = ensure_serving(dir.path(), &ca, &more).unwrap();
        assert_ne!(first, changed);
        assert!(verifies(&ca.cert, &changed, "n1"));
        assert!(!verifies(&ca.cert, &first, "n1"));

        // a new CA: made again, signed by it
        let ca2 = generate_ca().unwrap();
        let (resigned, _) = ensure_serving(dir.path(), &ca2, &more).unwrap();
        assert!(verifies(&ca2.cert, &resigned, "n1"));
    }

    #[tokio::test]
    async fn servers_sharing_a_store_share_one_ca() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db").display());
        let store = crate::store::open(&url).await.unwrap();
        let (a, b) = tokio::join!(cluster_ca(&store), cluster_ca(&store));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b);
        let store2 = crate::store::open(&url).await.unwrap();
        assert_eq!(cluster_ca(&store2).await.unwrap(), a);

        // two servers, two data dirs: their certificates differ, one CA vouches for both
        let (d1, d2) = (dir.path().join("s1"), dir.path().join("s2"));
        std::fs::create_dir_all(&d1).unwrap();
        std::fs::create_dir_all(&d2).unwrap();
        let tls = TlsConfig::default();
        let s1 = prepare(&tls, &d1, listen("127.0.0.1:1"), &store)
            .await
            .unwrap()
            .unwrap();
        let s2 = prepare(&tls, &d2, listen("127.0.0.1:2"), &store2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s1.ca_sha256, s2.ca_sha256);
        assert_eq!(
            s1.ca_pem,
            std::fs::read_to_string(d2.join("ca.crt")).unwrap()
        );
        let c1 = std::fs::read_to_string(d1.join("server.crt")).unwrap();
        assert!(verifies(&s2.ca_pem, &c1, "localhost"));
    }

    #[tokio::test]
    async fn insecure_http_is_for_loopback_only_and_cert_needs_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}", dir.path().join("db").display()))
            .await
            .unwrap();
        let insecure = TlsConfig {
            insecure_http: true,
            ..TlsConfig::default()
        };
        let r = prepare(&insecure, dir.path(), listen("0.0.0.0:1"), &store).await;
        assert!(matches!(r, Err(TlsError::InsecureNotLoopback(_))));
        let r = prepare(&insecure, dir.path(), listen("[::1]:1"), &store).await;
        assert!(matches!(r, Ok(None)));
        let half = TlsConfig {
            cert: Some(dir.path().join("x.crt")),
            ..TlsConfig::default()
        };
        let r = prepare(&half, dir.path(), listen("127.0.0.1:1"), &store).await;
        assert!(matches!(r, Err(TlsError::CertWithoutKey)));
    }

    #[tokio::test]
    async fn a_brought_chain_pins_its_last_certificate_unless_a_ca_file_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}", dir.path().join("db").display()))
            .await
            .unwrap();
        let ca = generate_ca().unwrap();
        let (leaf, key) = generate_serving(&ca, &["localhost".to_owned()]).unwrap();
        let chain = format!("{leaf}{}", ca.cert);
        std::fs::write(dir.path().join("chain.pem"), &chain).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), &leaf).unwrap();
        std::fs::write(dir.path().join("key.pem"), &key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.cert).unwrap();
        let ca_sha = sha256_hex(&certs_from_pem("ca", ca.cert.as_bytes()).unwrap()[0]);
        let brought = TlsConfig {
            cert: Some(dir.path().join("chain.pem")),
            key: Some(dir.path().join("key.pem")),
            ..TlsConfig::default()
        };
        let s = prepare(&brought, dir.path(), listen("127.0.0.1:1"), &store)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.ca_sha256, ca_sha);
        let with_ca = TlsConfig {
            cert: Some(dir.path().join("leaf.pem")),
            ca: Some(dir.path().join("ca.pem")),
            ..brought
        };
        let s = prepare(&with_ca, dir.path(), listen("127.0.0.1:1"), &store)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.ca_sha256, ca_sha);
        assert!(
            store.get(CA_KEY).await.unwrap().is_none(),
            "no cluster CA made"
        );
    }

    #[tokio::test]
    async fn servers_on_one_store_serve_under_one_ca_unless_the_pin_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}", dir.path().join("db").display()))
            .await
            .unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        // the cluster CA: every server that makes its certificate from it agrees
        let generated = TlsConfig::default();
        let s1 = prepare(&generated, &a, listen("127.0.0.1:1"), &store)
            .await
            .unwrap()
            .unwrap();
        let pin = store.get(PIN_KEY).await.unwrap().unwrap();
        assert_eq!(pin.value, s1.ca_sha256.as_bytes());
        prepare(&generated, &b, listen("127.0.0.1:2"), &store)
            .await
            .unwrap()
            .unwrap();
        // a server that brings another CA is refused, and nothing of it is written
        let other = generate_ca().unwrap();
        let (leaf, key) = generate_serving(&other, &["localhost".to_owned()]).unwrap();
        std::fs::write(b.join("chain.pem"), format!("{leaf}{}", other.cert)).unwrap();
        std::fs::write(b.join("key.pem"), &key).unwrap();
        let brought = TlsConfig {
            cert: Some(b.join("chain.pem")),
            key: Some(b.join("key.pem")),
            ..TlsConfig::default()
        };
        let before = std::fs::read(b.join("ca.crt")).unwrap();
        let e = prepare(&brought, &b, listen("127.0.0.1:2"), &store)
            .await
            .unwrap_err();
        assert!(matches!(&e, TlsError::PinMismatch { stored, .. } if *stored == s1.ca_sha256));
        assert!(e.to_string().contains("--tls-replace-pin"), "{e}");
        assert_eq!(std::fs::read(b.join("ca.crt")).unwrap(), before);
        // replacing the pin is a CA change for all of them
        let replacing = TlsConfig {
            replace_pin: true,
            ..brought
        };
        let s2 = prepare(&replacing, &b, listen("127.0.0.1:2"), &store)
            .await
            .unwrap()
            .unwrap();
        let pin = store.get(PIN_KEY).await.unwrap().unwrap();
        assert_eq!(pin.value, s2.ca_sha256.as_bytes());
        assert!(matches!(
            prepare(&generated, &a, listen("127.0.0.1:1"), &store).await,
            Err(TlsError::PinMismatch { .. })
        ));
    }

    #[test]
    fn join_tokens_carry_the_pin_in_front_of_the_secret() {
        assert_eq!(pinned_join_token(Some("ab"), "s3cret"), "K10ab::s3cret");
        assert_eq!(pinned_join_token(None, "s3cret"), "s3cret");
        assert_eq!(join_token_secret("K10ab::s3cret"), "s3cret");
        assert_eq!(join_token_secret("s3cret"), "s3cret");
    }

    #[test]
    fn pem_round_trips_through_der() {
        let ca = generate_ca().unwrap();
        let der = certs_from_pem("ca", ca.cert.as_bytes()).unwrap().remove(0);
        let again = certs_from_pem("again", der_to_pem(&der).as_bytes()).unwrap();
        assert_eq!(again, vec![der]);
        assert!(certs_from_pem("empty", b"nothing").is_err());
    }
}
