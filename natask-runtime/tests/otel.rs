//! The OpenTelemetry test, in a process of its own: tracing decides once
//! per call site, process-wide, whether anyone listens, and test threads of
//! a shared binary registering call sites at the same moment can leave the
//! handler's span switched off for this test's subscriber (it failed so
//! once in the shared binary under load). Here the subscriber is the
//! process's global default, set before any span exists.
#![cfg(feature = "opentelemetry")]

use std::time::Duration;

use natask_runtime::{event, subscribe, task, Client, Runtime, State, TaskError};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tokio::sync::{mpsc, oneshot};
use tracing_subscriber::layer::SubscriberExt;

/// How long any single expected event may take before the test fails.
const EVENT_DEADLINE: Duration = Duration::from_secs(20);

struct TraceTick(mpsc::UnboundedSender<()>);

#[task(queue = "it_trace")]
async fn traced(tick: State<TraceTick>, n: u32) -> Result<(), TaskError> {
    let _ = (n, tick.0.send(()));
    Ok(())
}

#[event]
struct TraceEvent {
    n: u32,
}

#[subscribe(service = "it_trace_svc")]
async fn traced_event(tick: State<TraceTick>, ev: TraceEvent) -> Result<(), TaskError> {
    let _ = (ev.n, tick.0.send(()));
    Ok(())
}

#[tokio::test]
async fn the_handler_span_is_a_child_of_the_enqueue_span_across_processes() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("natask-test")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber here");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let server = natask_testing::NatsServer::start();
    let client = Client::connect(&server.url()).await.expect("connect");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runtime = Runtime::builder(client.clone())
        .queues(["it_trace"])
        .services(["it_trace_svc"])
        .state(TraceTick(tx))
        .build()
        .await
        .expect("runtime builds");
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(runtime.run_until(async {
        let _ = stopped.await;
    }));
    Traced::new(7).enqueue(&client).await.unwrap();
    TraceEvent { n: 8 }.publish(&client).await.unwrap();
    for _ in 0..2 {
        tokio::time::timeout(EVENT_DEADLINE, rx.recv())
            .await
            .expect("the task and the event ran in time")
            .unwrap();
    }
    let _ = stop.send(());
    tokio::time::timeout(EVENT_DEADLINE, done)
        .await
        .expect("the runtime stopped in time")
        .unwrap()
        .unwrap();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    // The handler's span of the message a `producer` span sent: its child,
    // in its trace.
    let child_of = |producer: &str| {
        let parent = spans
            .iter()
            .find(|s| s.name == producer)
            .unwrap_or_else(|| panic!("a `{producer}` span"));
        let handler = spans
            .iter()
            .find(|s| s.name == "task" && s.parent_span_id == parent.span_context.span_id())
            .unwrap_or_else(|| panic!("no handler span is the `{producer}` span's child"));
        assert_eq!(
            handler.span_context.trace_id(),
            parent.span_context.trace_id(),
            "one trace from `{producer}` to the handler"
        );
    };
    child_of("enqueue");
    child_of("publish");
}
