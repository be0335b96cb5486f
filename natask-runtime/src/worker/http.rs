//! The runtime's optional HTTP endpoint: `/healthz` (alive), `/readyz`
//! (connected, and every served queue's stream and consumer present) and,
//! with the `metrics` feature, `/metrics` (Prometheus text format).
//!
//! A deliberately tiny HTTP/1.1 server (GET only, one request per
//! connection), so that probes and scrapes need no web framework.

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::client::Client;

/// Readiness of a runtime: cheap to clone, usable while the runtime runs.
#[derive(Clone)]
pub struct Health {
    pub(crate) client: Client,
    pub(crate) queues: Vec<(&'static str, PullConsumer)>,
}

/// Why a runtime is not ready ([`Health::check`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// The connection to NATS is down.
    #[error("not connected to NATS")]
    Disconnected,
    /// A served queue's consumer could not be read.
    #[error("queue `{queue}`: consumer not available")]
    JetStream {
        /// The queue.
        queue: &'static str,
        /// What JetStream answered.
        #[source]
        source: async_nats::Error,
    },
    /// JetStream did not answer about a served queue in time.
    #[error("queue `{queue}`: no answer from JetStream")]
    Timeout {
        /// The queue.
        queue: &'static str,
    },
}

impl Health {
    /// Whether NATS is connected and every served queue's stream and
    /// consumer exist.
    pub async fn is_ready(&self) -> bool {
        self.check().await.is_ok()
    }

    /// Like [`is_ready`](Self::is_ready), saying what is missing.
    pub async fn check(&self) -> Result<(), HealthError> {
        if !self.client.is_ready() {
            return Err(HealthError::Disconnected);
        }
        for (queue, consumer) in &self.queues {
            match tokio::time::timeout(Duration::from_secs(2), consumer.get_info()).await {
                Ok(Ok(info)) => {
                    #[cfg(feature = "metrics")]
                    crate::metrics::queue_state(queue, &info);
                    let _ = info;
                }
                Ok(Err(e)) => {
                    return Err(HealthError::JetStream {
                        queue,
                        source: e.into(),
                    })
                }
                Err(_) => return Err(HealthError::Timeout { queue }),
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field(
                "queues",
                &self.queues.iter().map(|(q, _)| q).collect::<Vec<_>>(),
            )
            .finish()
    }
}

pub(crate) async fn serve(listener: TcpListener, health: Health, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "http endpoint: accept failed");
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let health = health.clone();
        tokio::spawn(async move {
            if let Err(e) = respond(stream, &health).await {
                tracing::debug!(error = %e, "http endpoint: request failed");
            }
        });
    }
}

async fn respond(mut stream: TcpStream, health: &Health) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let request = String::from_utf8_lossy(&buf);
    let mut words = request.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, content_type, body) = if method != "GET" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n".to_owned(),
        )
    } else {
        match path {
            "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
            "/readyz" => match health.check().await {
                Ok(()) => ("200 OK", "text/plain", "ready\n".to_owned()),
                Err(why) => (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("not ready: {why}\n"),
                ),
            },
            "/metrics" => metrics(health).await,
            _ => (
                "404 Not Found",
                "text/plain",
                "try /healthz, /readyz or /metrics\n".to_owned(),
            ),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(feature = "metrics")]
async fn metrics(health: &Health) -> (&'static str, &'static str, String) {
    // fresh queue gauges for this scrape
    let _ = health.check().await;
    match crate::metrics::prometheus() {
        Some(handle) => ("200 OK", "text/plain; version=0.0.4", handle.render()),
        None => (
            "404 Not Found",
            "text/plain",
            "another metrics recorder is installed; natask's metrics go there\n".to_owned(),
        ),
    }
}

#[cfg(not(feature = "metrics"))]
async fn metrics(_: &Health) -> (&'static str, &'static str, String) {
    (
        "404 Not Found",
        "text/plain",
        "natask-runtime was built without the `metrics` feature\n".to_owned(),
    )
}
