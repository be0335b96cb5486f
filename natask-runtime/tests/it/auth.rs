//! Every way NATS authenticates a client, against a real server: each
//! connects (from a URL where NATS allows it, and from
//! `async_nats::ConnectOptions`), enqueues a task and reads its state back;
//! a wrong credential is refused with an error that does not contain it.

use natask_runtime::{task, Client, ConnectError, TaskError};
use natask_testing::{NatsServer, Operator, Pki};

#[task(queue = "it_auth")]
async fn authenticated(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

/// Enqueues a task and reads its state back: both the publish and the
/// JetStream API (stream creation, the task-state bucket) are allowed.
async fn enqueue_and_read_back(client: &Client) {
    let id = Authenticated { n: 7 }
        .enqueue(client)
        .await
        .expect("enqueue")
        .id;
    let info = client.task_info(id).await.expect("read the task back");
    assert!(info.is_some(), "task {id} has no state");
}

/// The error and all its sources, Display and Debug, as one text.
fn whole(err: &ConnectError) -> String {
    let mut text = format!("{err:?}");
    let mut next: Option<&dyn std::error::Error> = Some(err);
    while let Some(err) = next {
        text.push_str(&format!("\n{err}"));
        next = err.source();
    }
    text
}

/// Fails unless `err` is a refused connection whose every message leaves
/// out `secret`.
fn refused_without(err: &ConnectError, secret: &str) -> String {
    let text = whole(err);
    assert!(!text.contains(secret), "the secret leaked: {text}");
    assert!(
        err.to_string().starts_with("could not connect to NATS at"),
        "{err}"
    );
    text
}

fn base_options() -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new().connection_timeout(std::time::Duration::from_secs(5))
}

fn args(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn token() {
    let secret = "tok-3f9a1c";
    let server = NatsServer::start_with(&["--auth", secret]);
    let port = server.port();

    let client = Client::connect(&format!("nats://{secret}@127.0.0.1:{port}"))
        .await
        .expect("the token in the URL connects");
    enqueue_and_read_back(&client).await;
    let client = Client::connect_with(&server.url(), base_options().token(secret.into()))
        .await
        .expect("the token in ConnectOptions connects");
    enqueue_and_read_back(&client).await;

    let wrong = "tok-wrong-77e2";
    let err = Client::connect_with(&server.url(), base_options().token(wrong.into()))
        .await
        .unwrap_err();
    let text = refused_without(&err, wrong);
    assert!(text.contains("authorization"), "{text}");
}

#[tokio::test]
async fn user_and_password() {
    let server = NatsServer::start_with(&["--user", "natask", "--pass", "pw-81c0"]);
    let port = server.port();

    let client = Client::connect(&format!("nats://natask:pw-81c0@127.0.0.1:{port}"))
        .await
        .expect("user and password in the URL connect");
    enqueue_and_read_back(&client).await;
    let options = base_options().user_and_password("natask".into(), "pw-81c0".into());
    let client = Client::connect_with(&server.url(), options)
        .await
        .expect("user and password in ConnectOptions connect");
    enqueue_and_read_back(&client).await;

    let url = format!("nats://natask:pw-wrong-5d@127.0.0.1:{port}");
    let err = Client::connect(&url).await.unwrap_err();
    refused_without(&err, "pw-wrong-5d");
    let options = base_options().user_and_password("natask".into(), "pw-wrong-5d".into());
    let err = Client::connect_with(&server.url(), options)
        .await
        .unwrap_err();
    let text = refused_without(&err, "pw-wrong-5d");
    assert!(text.contains("authorization"), "{text}");
}

/// NATS takes no nkey in a URL: a seed is a private key.
#[tokio::test]
async fn nkey() {
    let user = nkeys::KeyPair::new_user();
    let server = NatsServer::start_with_config(&format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}",
        user.public_key()
    ));

    let seed = user.seed().expect("a user's seed");
    let client = Client::connect_with(&server.url(), base_options().nkey(seed))
        .await
        .expect("the nkey seed connects");
    enqueue_and_read_back(&client).await;

    let stranger = nkeys::KeyPair::new_user().seed().expect("a user's seed");
    let err = Client::connect_with(&server.url(), base_options().nkey(stranger.clone()))
        .await
        .unwrap_err();
    let text = refused_without(&err, &stranger);
    assert!(text.contains("authorization"), "{text}");
}

/// A server certificate of a private CA: the client trusts that CA through
/// `add_root_certificates`; one that does not is refused, naming the
/// certificate.
#[tokio::test]
async fn tls_with_a_private_ca() {
    let pki = Pki::new();
    let server = NatsServer::start_with(&args(&pki.server_args(false)));
    let port = server.port();

    for url in [server.url(), format!("tls://127.0.0.1:{port}")] {
        let options = base_options()
            .add_root_certificates(pki.ca())
            .require_tls(true);
        let client = Client::connect_with(&url, options)
            .await
            .expect("TLS with the private CA connects");
        enqueue_and_read_back(&client).await;
    }

    let err = Client::connect(&format!("tls://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    let text = whole(&err).to_lowercase();
    assert!(text.contains("certificate"), "{text}");
}

/// Mutual TLS: the server accepts only clients with a certificate of its
/// CA; one without a certificate or with another CA's is refused.
#[tokio::test]
async fn mutual_tls() {
    let pki = Pki::new();
    let server = NatsServer::start_with(&args(&pki.server_args(true)));
    let trusting = || {
        base_options()
            .add_root_certificates(pki.ca())
            .require_tls(true)
    };

    let options = trusting().add_client_certificate(pki.client_cert(), pki.client_key());
    let client = Client::connect_with(&server.url(), options)
        .await
        .expect("the client certificate connects");
    enqueue_and_read_back(&client).await;

    Client::connect_with(&server.url(), trusting())
        .await
        .expect_err("no client certificate is refused");
    let other = Pki::new();
    let options = trusting().add_client_certificate(other.client_cert(), other.client_key());
    let err = Client::connect_with(&server.url(), options)
        .await
        .unwrap_err();
    let key = std::fs::read_to_string(other.client_key()).unwrap();
    let body = key.lines().nth(1).expect("a PEM body line");
    refused_without(&err, body);
}

/// Decentralised auth: a server in operator mode (operator JWT, accounts
/// preloaded in a memory resolver, JetStream on for the account) admits a
/// user by its credentials file, through `ConnectOptions` and through an
/// async-nats connection handed to `Client::from_nats`; a user of an
/// account the operator never signed is refused, and the error leaves out
/// its seed.
#[tokio::test]
async fn credentials_file() {
    let operator = Operator::new();
    let server = NatsServer::start_with_config(&operator.server_config());
    let creds = operator.user("producer");

    let options = base_options()
        .credentials_file(creds.path())
        .await
        .expect("the credentials file reads");
    let client = Client::connect_with(&server.url(), options)
        .await
        .expect("the credentials file connects");
    enqueue_and_read_back(&client).await;
    let nats = async_nats::ConnectOptions::with_credentials_file(creds.path())
        .await
        .expect("the credentials file reads")
        .connect(server.url())
        .await
        .expect("the credentials file connects async-nats");
    enqueue_and_read_back(&Client::from_nats(nats)).await;

    let stranger = operator.stranger("stranger");
    let options = base_options()
        .credentials_file(stranger.path())
        .await
        .expect("the credentials file reads");
    let err = Client::connect_with(&server.url(), options)
        .await
        .unwrap_err();
    let text = refused_without(&err, stranger.seed());
    assert!(text.contains("authorization"), "{text}");
}
