//! JSON log lines as log pipelines (Loki, Cloud Logging, Elastic) look for them: one object per
//! line with `timestamp`, `level`, `target` and `message` at the top level, the event's own
//! fields beside them, and, in a line written inside a call, the call's `method`, `trace_id`
//! and `span_id`.
//!
//! `trace_id` is the call's trace: the one the caller sent in `traceparent`, or the one the
//! server started for it when exporting traces (a call without a `traceparent` while nothing is
//! exported has none). `span_id` is the call's SERVER span in that trace, so it is there only
//! while traces are exported: otherwise the call has no span anyone could look up, and the span
//! id in the caller's `traceparent` is the caller's, not the call's.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;

use super::{CALLS, TRACED_CALLS};

/// What a call's span says about the call, kept in the span for the lines written inside it.
#[derive(Default)]
struct Call {
    method: String,
    trace_id: String,
    /// The call's span id in its exported trace: looked up by the first line that needs it;
    /// `Some(None)` once known to be none.
    span_id: Option<Option<String>>,
}

impl Visit for Call {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "method" => self.method = value.to_string(),
            "trace_id" => self.trace_id = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(field.name(), "method" | "trace_id") {
            self.record_str(field, &format!("{value:?}"));
        }
    }
}

/// Keeps each call span's method and trace id in the span, for [`Lines`].
pub struct CallSpans;

impl<S> Layer<S> for CallSpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !matches!(attrs.metadata().target(), CALLS | TRACED_CALLS) {
            return;
        }
        let mut call = Call::default();
        attrs.record(&mut call);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(call);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(call) = span.extensions_mut().get_mut::<Call>() {
                values.record(call);
            }
        }
    }
}

/// An event's fields in the order written, its message apart.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    others: Vec<(&'static str, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.others.push((field.name(), value));
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let number = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, number);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

/// The JSON line format.
pub struct Lines;

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let metadata = event.metadata();
        let mut line = vec![
            ("timestamp", Value::String(timestamp)),
            ("level", Value::String(metadata.level().to_string())),
            ("target", Value::String(metadata.target().to_string())),
        ];
        if let Some(message) = fields.message.take() {
            line.push(("message", Value::String(message)));
        }
        let call = ctx
            .event_scope()
            .and_then(|scope| scope.into_iter().find_map(|span| call_of(&span)));
        line.append(&mut fields.others);
        // The event's own fields win: they say what the line is about.
        if let Some((method, trace_id, span_id)) = call {
            let of_call = [
                ("method", Some(method)),
                ("trace_id", Some(trace_id).filter(|id| !id.is_empty())),
                ("span_id", span_id),
            ];
            for (name, value) in of_call {
                if let (Some(value), false) = (value, line.iter().any(|(n, _)| *n == name)) {
                    line.push((name, Value::String(value)));
                }
            }
        }
        // In this order, for a person reading the lines too; a field repeated (an event's own
        // `level`, say) keeps its first value, ours.
        let mut written: Vec<&str> = Vec::with_capacity(line.len());
        let mut text = String::from("{");
        for (name, value) in line {
            if written.contains(&name) {
                continue;
            }
            if !written.is_empty() {
                text.push(',');
            }
            written.push(name);
            text.push_str(&serde_json::to_string(name).map_err(|_| fmt::Error)?);
            text.push(':');
            text.push_str(&serde_json::to_string(&value).map_err(|_| fmt::Error)?);
        }
        writeln!(writer, "{text}}}")
    }
}

/// The method, trace id and span id of the call `span` is, if it is one.
fn call_of<S>(span: &SpanRef<'_, S>) -> Option<(String, String, Option<String>)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let (method, trace_id, span_id) = {
        let extensions = span.extensions();
        let call = extensions.get::<Call>()?;
        (
            call.method.clone(),
            call.trace_id.clone(),
            call.span_id.clone(),
        )
    };
    let span_id = match span_id {
        Some(known) => known,
        None => {
            let found = exported_span_id(span);
            if let Some(call) = span.extensions_mut().get_mut::<Call>() {
                call.span_id = Some(found.clone());
            }
            found
        }
    };
    Some((method, trace_id, span_id))
}

/// The id of `span` in its exported trace, if it is exported. (The span's extensions must not
/// be held: the OpenTelemetry layer takes them.)
fn exported_span_id<S>(span: &SpanRef<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if span.metadata().target() != TRACED_CALLS {
        return None;
    }
    let context = tracing::dispatcher::get_default(|dispatch| {
        tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
    })?;
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.span_id().to_string())
}
