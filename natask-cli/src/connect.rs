//! Connecting as the options say: a `nats` context, or a URL with
//! credentials given apart from it (so that no secret is part of a message).

use std::time::Duration;

use natask_runtime::Client;

use crate::args::Connection;

/// Connects with `connection`, under its prefix.
pub(crate) async fn client(
    connection: &Connection,
) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    let client = match &connection.context {
        Some(context) => Client::from_context(context).await?,
        None => {
            let mut options = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(5))
                .name("natask-cli");
            if let Some(creds) = &connection.creds {
                options = options.credentials_file(creds).await.map_err(|e| {
                    format!(
                        "could not read the credentials file `{}`: {e}",
                        creds.display()
                    )
                })?;
            }
            if let (Some(user), Some(password)) = (&connection.user, &connection.password) {
                options = options.user_and_password(user.clone(), password.clone());
            }
            if let Some(token) = &connection.token {
                options = options.token(token.clone());
            }
            Client::connect_with(&connection.server, options).await?
        }
    };
    Ok(client.with_prefix(&connection.prefix)?)
}
