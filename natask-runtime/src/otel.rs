//! W3C trace context (`traceparent`, `tracestate`) from enqueue to handler.
//!
//! Uses OpenTelemetry's global text-map propagator, as every OpenTelemetry
//! integration does: install one once, e.g.
//! `opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new())`,
//! and a `tracing_opentelemetry` layer. Without a propagator nothing is
//! injected and handler spans start their own traces.

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use natask_core::Headers;

struct HeaderInjector<'a>(&'a mut async_nats::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a Headers);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k).collect()
    }
}

/// Writes the current span's context into the task's headers.
pub(crate) fn inject(headers: &mut async_nats::HeaderMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers))
    });
}

/// Makes `span` a child of the context the producer sent, if any.
pub(crate) fn set_parent(span: &tracing::Span, headers: &Headers) {
    if headers.get("traceparent").is_none() {
        // The producer sent no trace context: nothing to attach.
        return;
    }
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if let Err(e) = span.set_parent(cx) {
        tracing::debug!(error = %e, "could not attach the producer's trace context");
    }
}
