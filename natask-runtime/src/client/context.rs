//! Connecting with a NATS context, as the `nats` CLI stores one
//! (`nats context save`): a JSON file `<name>.json` under
//! `$XDG_CONFIG_HOME/nats/context/`, else `~/.config/nats/context/`.
//! Only the fields that say how to connect are read; the others (JetStream
//! domain, inbox prefix, colours, …) are ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Client, ConnectError};

/// Where the `nats` CLI connects when a context names no URL.
const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// The connection fields of a context file; an empty string means unset,
/// which is how the `nats` CLI writes fields it was not given.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Context {
    url: String,
    token: String,
    user: String,
    password: String,
    creds: String,
    nkey: String,
    cert: String,
    key: String,
    ca: String,
    tls_first: bool,
}

/// Connecting with a NATS context failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The name is not a plain file name (it holds a path separator or
    /// starts with a dot).
    #[error("`{0}` is not a NATS context name; a name is a file name without `/`")]
    InvalidName(String),
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("cannot find the NATS contexts: neither XDG_CONFIG_HOME nor HOME is set")]
    NoConfigDir,
    /// No context file of that name.
    #[error("no NATS context `{name}` (looked for `{}`); create it with `nats context save {name}`", path.display())]
    Missing {
        /// The context's name.
        name: String,
        /// The file looked for.
        path: PathBuf,
    },
    /// The context file, or a file it names (creds, nkey), could not be read.
    #[error("cannot read `{}` for NATS context `{name}`", path.display())]
    Read {
        /// The context's name.
        name: String,
        /// The file that could not be read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The context file is not a context's JSON.
    #[error("NATS context `{name}` in `{}` is not valid context JSON", path.display())]
    Invalid {
        /// The context's name.
        name: String,
        /// The context file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The context was read, but connecting with it failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

impl Client {
    /// Connects with the NATS context `name`, as the `nats` CLI saves it
    /// (`nats context save NAME --server ... --creds ...`):
    /// `$XDG_CONFIG_HOME/nats/context/NAME.json`, else
    /// `~/.config/nats/context/NAME.json`. Reads `url`, `token`, `user` and
    /// `password`, `creds` (a credentials file), `nkey` (a file holding an
    /// nkey seed), `cert` and `key` (a client certificate), `ca` (root
    /// certificates) and `tls_first`; paths may start with `~`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = natask_runtime::Client::from_context("orders").await?;
    /// # Ok(()) }
    /// ```
    pub async fn from_context(name: &str) -> Result<Client, ContextError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|home| home.join(".config")))
            .ok_or(ContextError::NoConfigDir)?;
        connect_context(&config.join("nats").join("context"), name, home.as_deref()).await
    }
}

/// Connects with the context `name` stored in `dir`; `home` replaces a
/// leading `~` in the paths it names.
pub(crate) async fn connect_context(
    dir: &Path,
    name: &str,
    home: Option<&Path>,
) -> Result<Client, ContextError> {
    let (url, options) = read_context(dir, name, home).await?;
    Ok(Client::connect_with(&url, options).await?)
}

/// The URLs and connect options the context `name` in `dir` stands for.
async fn read_context(
    dir: &Path,
    name: &str,
    home: Option<&Path>,
) -> Result<(String, async_nats::ConnectOptions), ContextError> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(ContextError::InvalidName(name.to_owned()));
    }
    let path = dir.join(format!("{name}.json"));
    let read_error = |path: PathBuf| {
        let name = name.to_owned();
        move |source: std::io::Error| ContextError::Read { name, path, source }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ContextError::Missing {
                name: name.to_owned(),
                path,
            })
        }
        Err(e) => return Err(read_error(path)(e)),
    };
    let context: Context = serde_json::from_str(&text).map_err(|source| ContextError::Invalid {
        name: name.to_owned(),
        path: path.clone(),
        source,
    })?;
    let file = |value: &str| expand_home(value, home);

    let mut options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
    if !context.user.is_empty() {
        options = options.user_and_password(context.user, context.password);
    } else if !context.token.is_empty() {
        options = options.token(context.token);
    }
    if !context.creds.is_empty() {
        let creds = file(&context.creds);
        options = options
            .credentials_file(&creds)
            .await
            .map_err(read_error(creds))?;
    }
    if !context.nkey.is_empty() {
        let nkey = file(&context.nkey);
        let seed = std::fs::read_to_string(&nkey).map_err(read_error(nkey))?;
        options = options.nkey(seed.trim().to_owned());
    }
    if !context.cert.is_empty() || !context.key.is_empty() {
        options = options.add_client_certificate(file(&context.cert), file(&context.key));
    }
    if !context.ca.is_empty() {
        options = options.add_root_certificates(file(&context.ca));
    }
    if context.tls_first {
        options = options.tls_first();
    }
    let url = match context.url.trim() {
        "" => DEFAULT_URL.to_owned(),
        url => url.to_owned(),
    };
    Ok((url, options))
}

/// `~/x` as `<home>/x`, as the `nats` CLI reads paths in a context.
fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use natask_testing::{NatsServer, Pki};
    use serde_json::json;

    use super::*;

    /// A directory holding the context `name`: every field the `nats` CLI
    /// writes, empty, then `fields`.
    fn context_dir(name: &str, fields: serde_json::Value) -> tempfile::TempDir {
        let mut context = json!({
            "description": "", "url": "", "socks_proxy": "", "token": "", "user": "",
            "password": "", "creds": "", "nkey": "", "cert": "", "key": "", "ca": "",
            "nsc": "", "jetstream_domain": "", "jetstream_api_prefix": "",
            "jetstream_event_prefix": "", "inbox_prefix": "", "user_jwt": "",
            "color_scheme": "", "tls_first": false,
        });
        for (field, value) in fields.as_object().expect("an object") {
            context[field] = value.clone();
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.json")),
            serde_json::to_vec_pretty(&context).unwrap(),
        )
        .unwrap();
        dir
    }

    /// Calls the JetStream API, which the connection must be allowed.
    async fn usable(client: &Client) {
        client
            .jetstream()
            .query_account()
            .await
            .expect("JetStream answers");
    }

    #[tokio::test]
    async fn user_and_password_from_a_context() {
        let server = NatsServer::start_with(&["--user", "natask", "--pass", "pw-ctx-41"]);
        let fields = json!({ "url": server.url(), "user": "natask", "password": "pw-ctx-41" });
        let dir = context_dir("dev", fields);
        let client = connect_context(dir.path(), "dev", None).await.unwrap();
        usable(&client).await;

        let fields = json!({ "url": server.url(), "user": "natask", "password": "pw-bad-93" });
        let dir = context_dir("dev", fields);
        let Err(err) = connect_context(dir.path(), "dev", None).await else {
            panic!("a wrong password is refused");
        };
        assert!(matches!(err, ContextError::Connect(_)), "{err}");
        assert!(!format!("{err} {err:?}").contains("pw-bad-93"), "{err:?}");
    }

    #[tokio::test]
    async fn token_from_a_context() {
        let server = NatsServer::start_with(&["--auth", "tok-ctx-12"]);
        let dir = context_dir("dev", json!({ "url": server.url(), "token": "tok-ctx-12" }));
        let client = connect_context(dir.path(), "dev", None).await.unwrap();
        usable(&client).await;
    }

    /// The file fields: an nkey seed file (named with `~`), a client
    /// certificate and key, and the CA, against a server that wants both
    /// mutual TLS and an nkey.
    #[tokio::test]
    async fn nkey_and_mutual_tls_from_a_context() {
        let pki = Pki::new();
        let user = nkeys::KeyPair::new_user();
        let server = NatsServer::start_with_config(&format!(
            "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify: true }}\n\
             authorization {{ users = [ {{ nkey: {} }} ] }}",
            pki.server_cert(),
            pki.server_key(),
            pki.ca(),
            user.public_key(),
        ));
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("user.nk"), user.seed().unwrap()).unwrap();
        let dir = context_dir(
            "secure",
            json!({
                "url": server.url(),
                "nkey": "~/user.nk",
                "cert": pki.client_cert(),
                "key": pki.client_key(),
                "ca": pki.ca(),
            }),
        );
        let client = connect_context(dir.path(), "secure", Some(home.path()))
            .await
            .unwrap();
        usable(&client).await;
    }

    /// A credentials file (JWT and seed) named by a context, against a
    /// server in operator mode; one of an unknown account is refused.
    #[tokio::test]
    async fn creds_from_a_context() {
        let operator = natask_testing::Operator::new();
        let server = NatsServer::start_with_config(&operator.server_config());
        let creds = operator.user("ctx");
        let dir = context_dir("op", json!({ "url": server.url(), "creds": creds.path() }));
        let client = connect_context(dir.path(), "op", None).await.unwrap();
        usable(&client).await;

        let stranger = operator.stranger("ctx-stranger");
        let dir = context_dir(
            "op",
            json!({ "url": server.url(), "creds": stranger.path() }),
        );
        let Err(err) = connect_context(dir.path(), "op", None).await else {
            panic!("a user of an unknown account is refused");
        };
        assert!(matches!(err, ContextError::Connect(_)), "{err}");
        assert!(
            !format!("{err} {err:?}").contains(stranger.seed()),
            "{err:?}"
        );
    }

    #[test]
    fn a_leading_tilde_is_the_home_directory() {
        let home = Path::new("/home/ann");
        assert_eq!(
            expand_home("~/keys/a.nk", Some(home)),
            Path::new("/home/ann/keys/a.nk")
        );
        assert_eq!(expand_home("/etc/a.nk", Some(home)), Path::new("/etc/a.nk"));
        assert_eq!(expand_home("~/a.nk", None), Path::new("~/a.nk"));
    }

    #[tokio::test]
    async fn names_that_are_paths_are_refused() {
        for name in ["", "../etc/passwd", "a/b", ".hidden"] {
            let err = read_context(Path::new("/nowhere"), name, None)
                .await
                .unwrap_err();
            assert!(matches!(err, ContextError::InvalidName(_)), "{name}: {err}");
        }
    }

    #[tokio::test]
    async fn a_missing_context_names_the_file_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_context(dir.path(), "orders", None).await.unwrap_err();
        let path = dir.path().join("orders.json");
        assert_eq!(
            err.to_string(),
            format!(
                "no NATS context `orders` (looked for `{}`); create it with `nats context save orders`",
                path.display()
            )
        );
    }

    #[tokio::test]
    async fn invalid_json_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.json"), "{ url: ").unwrap();
        let err = read_context(dir.path(), "bad", None).await.unwrap_err();
        assert!(matches!(err, ContextError::Invalid { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_unreadable_nkey_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("k.json"),
            r#"{"url": "nats://127.0.0.1:1", "nkey": "~/missing.nk"}"#,
        )
        .unwrap();
        let err = read_context(dir.path(), "k", Some(dir.path()))
            .await
            .unwrap_err();
        let ContextError::Read { path, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(path, &dir.path().join("missing.nk"));
    }
}
