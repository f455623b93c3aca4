//! Structured logs: JSON lines on stderr by default (one object per event, with the span fields
//! such as `request_id`), or a compact human format with `PICORTEX_LOG_FORMAT=pretty`. The level
//! comes from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let pretty = std::env::var("PICORTEX_LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = if pretty {
        builder.compact().try_init()
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init()
    };
}
