//! Enqueue → handled exactly once, payload intact.

use std::collections::BTreeMap;

use natask_runtime::{task, State, TaskError};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{builder, connect, queued, recv_n, Running};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Address {
    street: String,
    city: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Shape {
    Unit,
    Circle { r: f64 },
    Tuple(i64, bool),
}

pub(crate) struct Seen(mpsc::UnboundedSender<RoundTrip>);

#[task(queue = "it_round_trip")]
async fn round_trip(
    seen: State<Seen>,
    name: String,
    home: Address,
    shape: Shape,
    tags: Vec<String>,
    scores: BTreeMap<String, u32>,
    nickname: Option<String>,
) -> Result<(), TaskError> {
    let _ = seen
        .0
        .send(RoundTrip::new(name, home, shape, tags, scores, nickname));
    Ok(())
}

impl PartialEq for RoundTrip {
    fn eq(&self, o: &Self) -> bool {
        (
            &self.name,
            &self.home,
            &self.shape,
            &self.tags,
            &self.scores,
            &self.nickname,
        ) == (&o.name, &o.home, &o.shape, &o.tags, &o.scores, &o.nickname)
    }
}

fn samples() -> Vec<RoundTrip> {
    let scores = |pairs: &[(&str, u32)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    vec![
        RoundTrip::new(
            "Zoë Ångström 東京 🚀".into(),
            Address {
                street: "Straße 1\n\"quoted\"".into(),
                city: Some("Zürich".into()),
            },
            Shape::Circle { r: 1.5 },
            vec!["a".into(), "ü".into()],
            scores(&[("x", 1), ("ÿ", u32::MAX)]),
            Some("zo".into()),
        ),
        RoundTrip::new(
            String::new(),
            Address {
                street: "—".into(),
                city: None,
            },
            Shape::Unit,
            vec![],
            BTreeMap::new(),
            None,
        ),
        RoundTrip {
            name: "struct literal".into(),
            home: Address {
                street: "s".into(),
                city: None,
            },
            shape: Shape::Tuple(-7, true),
            tags: vec!["t".into(); 3],
            scores: scores(&[("k", 0)]),
            nickname: None,
        },
    ]
}

#[tokio::test]
async fn every_payload_shape_arrives_intact_exactly_once() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let sent = samples();
    let mut ids = Vec::new();
    for task in &sent {
        ids.push(task.enqueue(&client).await.expect("enqueue").id);
    }
    assert_eq!(
        queued(&client, "it_round_trip").await,
        3,
        "all three stored before any worker ran"
    );

    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &["it_round_trip"]).state(Seen(tx))).await;
    let mut got = recv_n(&mut rx, sent.len()).await;
    running.stop().await;

    // nothing more was delivered, nothing is left queued
    assert!(rx.try_recv().is_err(), "a task was handled twice");
    assert_eq!(queued(&client, "it_round_trip").await, 0);
    got.sort_by(|a, b| a.name.cmp(&b.name));
    let mut want = sent;
    want.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(got, want);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "ids are unique");
}

#[tokio::test]
async fn the_function_stays_callable() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seen = natask_runtime::State::from_arc(std::sync::Arc::new(Seen(tx)));
    let s = samples().remove(1);
    round_trip(
        seen,
        s.name.clone(),
        s.home.clone(),
        s.shape.clone(),
        vec![],
        BTreeMap::new(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(rx.recv().await.unwrap(), s);
}

#[tokio::test]
async fn ids_are_returned_and_parse_back() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let id = samples().remove(0).enqueue(&client).await.unwrap().id;
    let parsed: natask_runtime::TaskId = id.to_string().parse().unwrap();
    assert_eq!(parsed, id);
    let stream = client
        .jetstream()
        .get_stream("NATASK_Q_it_round_trip")
        .await
        .unwrap();
    let stored = stream
        .get_last_raw_message_by_subject(&format!("natask.q.it_round_trip.round_trip.{id}"))
        .await
        .unwrap();
    let header = |n: &str| stored.headers.get(n).map(|v| v.as_str().to_owned());
    // Format 2: the id is the dedup id, the enqueue time the stream's.
    assert_eq!(header("Nats-Msg-Id"), Some(id.to_string()));
    assert_eq!(header("Natask-Task").as_deref(), Some("round_trip"));
    assert_eq!(header("Natask-Format").as_deref(), Some("2"));
    for left_out in ["Natask-Id", "Natask-Enqueued-At", "Content-Type"] {
        assert_eq!(header(left_out), None, "{left_out}");
    }
    let body: serde_json::Value = serde_json::from_slice(&stored.payload).unwrap();
    assert_eq!(body["home"]["city"], "Zürich");
}
