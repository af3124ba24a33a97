//! A throwaway certificate authority for tests: a self-signed CA made at runtime and a server
//! certificate for `localhost` and `127.0.0.1` signed by it. Clients trust [`TestCa::ca_pem`]
//! exactly as an operator would trust a private relay's CA, so the real verification path runs;
//! nothing is written to disk and nothing depends on OpenSSL.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA and one server certificate it signed, ready to serve TLS on the loopback address.
#[derive(Debug, Clone)]
pub struct TestCa {
    ca_pem: String,
    server_config: Arc<ServerConfig>,
}

impl TestCa {
    /// Creates a fresh CA and a server certificate for `localhost` and `127.0.0.1` signed by it.
    ///
    /// # Panics
    ///
    /// When key generation or signing fails, which only a broken crypto backend can cause.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.distinguished_name.push(DnType::CommonName, "Herald test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca_params, ca_key);

        // Both names: clients connect by IP (no resolver surprises with `::1`) or by name.
        let server_key = KeyPair::generate().expect("generate the server key");
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("server parameters");
        server_params.distinguished_name.push(DnType::CommonName, "localhost");
        let server_cert = server_params.signed_by(&server_key, &issuer).expect("sign the server certificate");

        // The chain carries the CA too, as real servers send intermediates; clients still need it as a root.
        let chain: Vec<CertificateDer<'static>> = vec![server_cert.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        // An explicit provider: the process-wide default may or may not be installed by the test.
        let server_config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the server key matches its certificate");

        Self { ca_pem: ca_cert.pem(), server_config: Arc::new(server_config) }
    }

    /// The CA certificate as PEM, for clients to trust.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A TLS server configuration presenting the `localhost` / `127.0.0.1` certificate.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server_config)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
