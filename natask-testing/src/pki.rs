//! A private certificate authority made afresh for each test, so no key is
//! ever checked in.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A private CA, a server certificate for `127.0.0.1` and `localhost`, and
/// a client certificate, as PEM files in a temporary directory removed on
/// drop.
///
/// ```no_run
/// let pki = natask_testing::Pki::new();
/// let args = pki.server_args(true);
/// let args: Vec<&str> = args.iter().map(String::as_str).collect();
/// let server = natask_testing::NatsServer::start_with(&args);
/// ```
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Makes a new CA and signs a server and a client certificate with it.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("natask-pki-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "natask test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");
        write(dir.path(), "ca.pem", &ca_cert.pem());
        let issuer = Issuer::new(ca, ca_key);
        for (name, purpose) in [
            ("server", ExtendedKeyUsagePurpose::ServerAuth),
            ("client", ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let key = KeyPair::generate().expect("generate a key");
            let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
                .expect("certificate parameters");
            params
                .distinguished_name
                .push(DnType::CommonName, format!("natask test {name}"));
            params.extended_key_usages = vec![purpose];
            let cert = params.signed_by(&key, &issuer).expect("sign a certificate");
            write(dir.path(), &format!("{name}.pem"), &cert.pem());
            write(dir.path(), &format!("{name}-key.pem"), &key.serialize_pem());
        }
        Pki { dir }
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM), signed by [`ca`](Self::ca).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server certificate's private key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server-key.pem")
    }

    /// The client certificate (PEM), signed by [`ca`](Self::ca).
    pub fn client_cert(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// The client certificate's private key (PEM).
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client-key.pem")
    }

    /// `nats-server` arguments that require TLS with the server certificate;
    /// with `verify`, clients must also present a certificate signed by
    /// this CA (mutual TLS).
    pub fn server_args(&self, verify: bool) -> Vec<String> {
        let path = |file: PathBuf| file.display().to_string();
        let mut args = vec![
            "--tls".to_owned(),
            "--tlscert".to_owned(),
            path(self.server_cert()),
            "--tlskey".to_owned(),
            path(self.server_key()),
        ];
        if verify {
            args.extend([
                "--tlsverify".to_owned(),
                "--tlscacert".to_owned(),
                path(self.ca()),
            ]);
        }
        args
    }
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

fn write(dir: &Path, file: &str, pem: &str) {
    std::fs::write(dir.join(file), pem).expect("cannot write a PEM file");
}
