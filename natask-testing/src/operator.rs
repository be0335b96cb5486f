//! Decentralised NATS auth made afresh for each test: an operator, its
//! system account and an application account with JetStream, as signed
//! JWTs, and users of that account as `.creds` files — what `nsc` would
//! make, without `nsc` and with no key checked in.
//!
//! A NATS JWT is `header.claims.signature`, each part base64url without
//! padding: the header says `ed25519-nkey`, the claims are JSON, and the
//! signature is the issuer's nkey over `header.claims`
//! (<https://docs.nats.io/running-a-nats-service/configuration/securing_nats/jwt>).
//! The `nats-jwt` crate (0.3) makes account and user JWTs but neither an
//! operator JWT nor an account's JetStream limits, both of which a test
//! server needs; so this file encodes the claims itself, signing with
//! `nkeys`. Only the claims a server needs to admit a user are written.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::KeyPair;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// An operator with a system account and one application account whose
/// JetStream is unlimited, for a server in operator mode
/// ([`server_config`](Self::server_config): `resolver: MEMORY` with the
/// accounts preloaded). [`user`](Self::user) issues users of the
/// application account as credentials files.
///
/// ```no_run
/// let operator = natask_testing::Operator::new();
/// let server = natask_testing::NatsServer::start_with_config(&operator.server_config());
/// let creds = operator.user("producer");
/// // async_nats::ConnectOptions::with_credentials_file(creds.path())
/// ```
pub struct Operator {
    key: KeyPair,
    system: KeyPair,
    account: KeyPair,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Public keys only: the seeds are secrets even in a test log.
        f.debug_struct("Operator")
            .field("operator", &self.key.public_key())
            .field("account", &self.account.public_key())
            .finish_non_exhaustive()
    }
}

/// A user's credentials file (the user's JWT and nkey seed, as `nsc`
/// writes them), removed with the [`Operator`] that issued it.
#[derive(Debug, Clone)]
pub struct Creds {
    path: PathBuf,
    seed: String,
}

impl Creds {
    /// The `.creds` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user's nkey seed (`SU...`), the secret in the file: for tests
    /// that check it never shows in an error.
    pub fn seed(&self) -> &str {
        &self.seed
    }
}

impl Operator {
    /// Makes new operator, system account and account keys.
    pub fn new() -> Operator {
        Operator {
            key: KeyPair::new_operator(),
            system: KeyPair::new_account(),
            account: KeyPair::new_account(),
            dir: tempfile::Builder::new()
                .prefix("natask-operator-")
                .tempdir()
                .expect("cannot create a temporary directory"),
        }
    }

    /// The application account's public key (`A...`).
    pub fn account(&self) -> String {
        self.account.public_key()
    }

    /// A server configuration for operator mode: this operator's JWT, its
    /// system account, and both accounts' JWTs preloaded in a memory
    /// resolver. The application account may use JetStream without limit
    /// (the server runs with `-js`).
    pub fn server_config(&self) -> String {
        let operator = self.key.public_key();
        let system = self.system.public_key();
        let account = self.account.public_key();
        let operator_jwt = sign(
            &self.key,
            &operator,
            "natask-test-operator",
            json!({ "type": "operator", "version": 2, "system_account": system }),
        );
        let system_jwt = self.account_jwt(&self.system, "SYS", false);
        let account_jwt = self.account_jwt(&self.account, "APP", true);
        format!(
            "operator: {operator_jwt}\n\
             system_account: {system}\n\
             resolver: MEMORY\n\
             resolver_preload: {{\n  {system}: {system_jwt}\n  {account}: {account_jwt}\n}}\n"
        )
    }

    /// Issues a user of the application account, named `name`, and writes
    /// its credentials file.
    pub fn user(&self, name: &str) -> Creds {
        issue(
            &self.account,
            &self.dir.path().join(format!("{name}.creds")),
            name,
        )
    }

    /// A credentials file of a user of an account this operator never
    /// signed (same file format, unknown issuer): a server must refuse it.
    pub fn stranger(&self, name: &str) -> Creds {
        issue(
            &KeyPair::new_account(),
            &self.dir.path().join(format!("{name}.creds")),
            name,
        )
    }

    fn account_jwt(&self, account: &KeyPair, name: &str, jetstream: bool) -> String {
        // -1 is "unlimited"; JetStream is on for an account whose storage
        // limits are not 0.
        let storage = if jetstream { -1 } else { 0 };
        let nats = json!({
            "type": "account",
            "version": 2,
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": storage, "disk_storage": storage,
                "streams": -1, "consumer": -1,
            },
            "default_permissions": { "pub": {}, "sub": {} },
        });
        sign(&self.key, &account.public_key(), name, nats)
    }
}

impl Default for Operator {
    fn default() -> Operator {
        Operator::new()
    }
}

/// A new user signed by `account`, its credentials file written to `path`.
fn issue(account: &KeyPair, path: &Path, name: &str) -> Creds {
    let user = KeyPair::new_user();
    let nats = json!({
        "type": "user",
        "version": 2,
        "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
    });
    let jwt = sign(account, &user.public_key(), name, nats);
    let seed = user.seed().expect("a user's seed");
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    );
    std::fs::write(path, text).expect("cannot write a credentials file");
    Creds {
        path: path.to_owned(),
        seed,
    }
}

/// A JWT of `subject` named `name` with the `nats` claims, signed by
/// `issuer`.
fn sign(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs();
    let mut claims = json!({
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    // The JWT id is a hash of the claims without it, as the Go library
    // makes it; servers use it only to tell JWTs apart.
    let digest = Sha256::digest(claims.to_string().as_bytes());
    claims["jti"] = Value::String(BASE32_NOPAD.encode(&digest));
    let header = BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{body}");
    let signature = issuer
        .sign(signed.as_bytes())
        .expect("an account or operator key signs");
    format!("{signed}.{}", BASE64URL_NOPAD.encode(&signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_verifies_with_its_issuers_public_key() {
        let issuer = KeyPair::new_account();
        let jwt = sign(&issuer, "UXYZ", "u", json!({ "type": "user" }));
        let (signed, signature) = jwt.rsplit_once('.').unwrap();
        let signature = BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap();
        let public = KeyPair::from_public_key(&issuer.public_key()).unwrap();
        public.verify(signed.as_bytes(), &signature).unwrap();
        let claims = signed.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&BASE64URL_NOPAD.decode(claims.as_bytes()).unwrap()).unwrap();
        assert_eq!(claims["iss"], issuer.public_key());
        assert_eq!(claims["sub"], "UXYZ");
    }
}
