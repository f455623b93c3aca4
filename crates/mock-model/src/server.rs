//! The HTTP side: routes, choosing a step for a request, and sending it (JSON, SSE, errors,
//! stalls), plus the `/_mock/…` admin routes.
//!
//! Routes:
//! - `POST /v1/messages` (any query, e.g. Claude Code's `?beta=true`): the scripted answer.
//! - `POST /v1/messages/count_tokens`: `{"input_tokens": n}` (a rough estimate).
//! - `GET /` and `HEAD /`: 200 (Claude Code's runtime probes the base URL at start).
//! - `GET|PUT /_mock/script`: read or swap the script (a swap also resets every step cursor).
//! - `GET|DELETE /_mock/requests`: read or clear the request log.
//! - anything else: 404 with the API's `not_found_error` body.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use regex::Regex;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::error::ScriptError;
use crate::log::{RecordedRequest, RequestLog};
use crate::request::{View, expand, expand_value};
use crate::script::{Action, ErrorStep, Exhausted, Rule, Scope, Script, Step};
use crate::wire::{self, Block};

/// Request bodies up to the real API's limit.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A script with its regexes compiled.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub script: Script,
    regexes: Vec<Option<Regex>>,
}

impl Compiled {
    pub fn new(script: Script) -> Result<Self, ScriptError> {
        let regexes = script.compile()?;
        Ok(Self { script, regexes })
    }
}

/// Cursor key: conversation, rule index, and the turn for turn-scoped rules.
type CursorKey = (String, usize, Option<usize>);

/// State shared by all handlers and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    script: Mutex<Arc<Compiled>>,
    cursors: Mutex<HashMap<CursorKey, usize>>,
    log: Mutex<RequestLog>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub fn new(compiled: Compiled, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            script: Mutex::new(Arc::new(compiled)),
            cursors: Mutex::new(HashMap::new()),
            log: Mutex::new(RequestLog::default()),
            shutdown,
        }
    }

    pub fn set_script(&self, script: Script) -> Result<(), ScriptError> {
        let compiled = Compiled::new(script)?;
        *lock(&self.script) = Arc::new(compiled);
        lock(&self.cursors).clear();
        Ok(())
    }

    pub fn script(&self) -> Script {
        lock(&self.script).script.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).all()
    }

    pub fn clear_requests(&self) {
        lock(&self.log).clear();
    }

    fn choose(&self, view: &View) -> Choice {
        let compiled = Arc::clone(&lock(&self.script));
        let mut cursors = lock(&self.cursors);
        for (index, rule) in compiled.script.rules.iter().enumerate() {
            let regex = compiled.regexes.get(index).and_then(Option::as_ref);
            let Some(captures) = matches(rule, regex, view) else {
                continue;
            };
            let turn = match rule.scope {
                Scope::Turn => Some(view.turn),
                Scope::Conversation => None,
            };
            let cursor = cursors
                .entry((view.conversation.clone(), index, turn))
                .or_insert(0);
            let len = rule.steps.len();
            let step_index = if *cursor < len {
                *cursor
            } else {
                match rule.exhausted {
                    Exhausted::Fallthrough => continue,
                    Exhausted::RepeatLast => len.saturating_sub(1),
                    Exhausted::Cycle => *cursor % len.max(1),
                }
            };
            let Some(step) = rule.steps.get(step_index) else {
                continue;
            };
            *cursor += 1;
            return Choice {
                step: step.clone(),
                rule: rule.label(index),
                step_index: Some(step_index),
                captures,
            };
        }
        Choice {
            step: compiled.script.default.clone(),
            rule: "default".to_string(),
            step_index: None,
            captures: HashMap::new(),
        }
    }

    fn record(&self, mut entry: RecordedRequest) -> u64 {
        let mut log = lock(&self.log);
        entry.seq = log.next_seq();
        let seq = entry.seq;
        log.push(entry);
        seq
    }
}

struct Choice {
    step: Step,
    rule: String,
    step_index: Option<usize>,
    captures: HashMap<String, String>,
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// `Some(captures)` when the rule applies to the request.
fn matches(rule: &Rule, regex: Option<&Regex>, view: &View) -> Option<HashMap<String, String>> {
    let when = &rule.when;
    if let Some(needle) = &when.prompt_contains
        && !contains_ci(&view.prompt, needle)
    {
        return None;
    }
    if let Some(needle) = &when.system_contains
        && !contains_ci(&view.system, needle)
    {
        return None;
    }
    if let Some(needle) = &when.model_contains
        && !contains_ci(&view.model, needle)
    {
        return None;
    }
    if let Some(has) = when.has_tools
        && has == view.tools.is_empty()
    {
        return None;
    }
    if let Some(tool) = &when.tool_offered
        && !view.tools.iter().any(|t| t == tool)
    {
        return None;
    }
    let mut captures = HashMap::new();
    if let Some(regex) = regex {
        let found = regex.captures(&view.prompt)?;
        for (i, group) in found.iter().enumerate() {
            if let Some(group) = group {
                captures.insert(i.to_string(), group.as_str().to_string());
            }
        }
        for name in regex.capture_names().flatten() {
            if let Some(group) = found.name(name) {
                captures.insert(name.to_string(), group.as_str().to_string());
            }
        }
    }
    Some(captures)
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/_mock/script", get(get_script).put(put_script))
        .route("/_mock/requests", get(get_requests).delete(delete_requests))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

fn api_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-api-key")
        .or_else(|| headers.get(header::AUTHORIZATION))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// A log entry with the request's own fields filled in.
fn base_entry(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    request_id: &str,
) -> RecordedRequest {
    RecordedRequest {
        seq: 0,
        at_ms: now_ms(),
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: header_map(headers),
        api_key: api_key(headers),
        model: None,
        system: None,
        messages: Vec::new(),
        tools: Vec::new(),
        stream: false,
        prompt: None,
        other: BTreeMap::new(),
        rule: None,
        step: None,
        reply: String::new(),
        status: 200,
        request_id: request_id.to_string(),
    }
}

fn fill_from_body(entry: &mut RecordedRequest, body: &Value, view: &View) {
    entry.model = Some(view.model.clone());
    entry.system = (!view.system.is_empty()).then(|| view.system.clone());
    entry.messages = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entry.tools = view.tools.clone();
    entry.stream = view.stream;
    entry.prompt = Some(view.prompt.clone());
    if let Value::Object(map) = body {
        entry.other = map
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "tools" | "system" | "messages"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

fn json_response(status: StatusCode, body: &Value, request_id: &str) -> Response {
    let response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    with_request_id(response, request_id)
}

fn error_response(error: &ErrorStep, request_id: &str) -> Response {
    let status =
        StatusCode::from_u16(error.resolved_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = wire::error_body(
        &error.resolved_type(),
        &error.resolved_message(),
        request_id,
    );
    let mut response = json_response(status, &body, request_id);
    let retry_after = error
        .retry_after
        .or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    if let Some(retry) = error.should_retry {
        response.headers_mut().insert(
            HeaderName::from_static("x-should-retry"),
            HeaderValue::from_static(if retry { "true" } else { "false" }),
        );
    }
    response
}

fn invalid_request(message: &str, request_id: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &wire::error_body("invalid_request_error", message, request_id),
        request_id,
    )
}

/// Waits until shutdown is signalled (or the handle is gone).
async fn shutdown_signal(mut shutdown: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means shutdown.
    let _ = shutdown.wait_for(|down| *down).await;
}

/// Sleeps `ms`, cut short by shutdown.
async fn pause(ms: u64, shutdown: &watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => {}
        () = shutdown_signal(shutdown.clone()) => {}
    }
}

/// How an SSE body ends after its events.
enum Tail {
    /// Normally, after the last event.
    End,
    /// Silence until shutdown, the client leaving, or `close_after_ms` (then the connection is
    /// cut without a final chunk).
    Stall { close_after_ms: Option<u64> },
}

fn sse_response(
    events: Vec<Bytes>,
    chunk_delay_ms: Option<u64>,
    tail: Tail,
    shutdown: watch::Receiver<bool>,
    request_id: &str,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        for (i, event) in events.into_iter().enumerate() {
            if i > 0
                && let Some(ms) = chunk_delay_ms
            {
                pause(ms, &shutdown).await;
            }
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        if let Tail::Stall { close_after_ms } = tail {
            let cut = async {
                match close_after_ms {
                    Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = shutdown_signal(shutdown.clone()) => {}
                () = tx.closed() => {}
                () = cut => {
                    let _ = tx
                        .send(Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "mock-model: stalled stream cut",
                        )))
                        .await;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    with_request_id(response, request_id)
}

/// The content blocks of a text or tool_use step, placeholders expanded.
fn blocks_for(action: &Action, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<Block> {
    match action {
        Action::Text(texts) => texts
            .iter()
            .map(|t| Block::Text(expand(t, lookup)))
            .collect(),
        Action::ToolUse(tools) => tools
            .text
            .iter()
            .map(|t| Block::Text(expand(t, lookup)))
            .chain(tools.calls.iter().map(|call| Block::ToolUse {
                id: call.id.clone().unwrap_or_else(|| wire::new_id("toolu")),
                name: call.name.clone(),
                input: expand_value(&call.input, lookup),
            }))
            .collect(),
        Action::Error(_) | Action::Stall(_) => Vec::new(),
    }
}

async fn messages(
    State(app): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = wire::new_id("req");
    let mut entry = base_entry(&method, &uri, &headers, &request_id);
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) | Err(_) => {
            entry.reply = "invalid_request".into();
            entry.status = 400;
            app.record(entry);
            return invalid_request("The request body is not a JSON object.", &request_id);
        }
    };
    let view = View::from_body(&parsed);
    fill_from_body(&mut entry, &parsed, &view);
    if parsed.get("model").and_then(Value::as_str).is_none() {
        entry.reply = "invalid_request".into();
        entry.status = 400;
        app.record(entry);
        return invalid_request("model: Field required", &request_id);
    }
    if parsed.get("messages").and_then(Value::as_array).is_none() {
        entry.reply = "invalid_request".into();
        entry.status = 400;
        app.record(entry);
        return invalid_request("messages: Field required", &request_id);
    }

    let choice = app.choose(&view);
    let step = choice.step;
    entry.rule = Some(choice.rule.clone());
    entry.step = choice.step_index;
    entry.reply = step.kind().to_string();
    entry.status = match &step.action {
        Action::Error(error) if !(error.in_stream && view.stream) => error.resolved_status(),
        _ => 200,
    };
    let seq = app.record(entry);
    tracing::debug!(seq, rule = %choice.rule, step = ?choice.step_index, kind = step.kind(), prompt = %view.prompt, "mock-model: answering");

    if let Some(ms) = step.delay_ms {
        pause(ms, &app.shutdown).await;
    }
    let captures = choice.captures;
    let lookup = |key: &str| -> Option<String> {
        match key {
            "prompt" => Some(view.prompt.clone()),
            "cwd" => view.cwd.clone(),
            "model" => Some(view.model.clone()),
            other => captures.get(other).cloned(),
        }
    };
    let message_id = wire::new_id("msg");
    let input_tokens = wire::estimate_tokens(body.len());
    match &step.action {
        Action::Error(error) if error.in_stream && view.stream => {
            let mut events = wire::stream_head(&message_id, &view.model, input_tokens);
            events.push(wire::error_event(
                &error.resolved_type(),
                &error.resolved_message(),
                &request_id,
            ));
            sse_response(
                events,
                step.chunk_delay_ms,
                Tail::End,
                app.shutdown.clone(),
                &request_id,
            )
        }
        Action::Error(error) => error_response(error, &request_id),
        Action::Stall(stall) => {
            if view.stream {
                sse_response(
                    wire::stream_head(&message_id, &view.model, input_tokens),
                    step.chunk_delay_ms,
                    Tail::Stall {
                        close_after_ms: stall.close_after_ms,
                    },
                    app.shutdown.clone(),
                    &request_id,
                )
            } else {
                match stall.close_after_ms {
                    Some(ms) => pause(ms, &app.shutdown).await,
                    None => shutdown_signal(app.shutdown.clone()).await,
                }
                error_response(
                    &ErrorStep {
                        status: Some(500),
                        message: Some("mock-model: stalled request ended".into()),
                        ..ErrorStep::default()
                    },
                    &request_id,
                )
            }
        }
        action @ (Action::Text(_) | Action::ToolUse(_)) => {
            let blocks = match (choice.step_index, json_schema(&parsed)) {
                // Unscripted structured-output requests (Claude Code's title generation, …)
                // get a JSON text that fits their schema.
                (None, Some(schema)) if matches!(action, Action::Text(_)) => {
                    vec![Block::Text(schema_instance(schema).to_string())]
                }
                _ => blocks_for(action, &lookup),
            };
            if view.stream {
                let mut events = wire::stream_head(&message_id, &view.model, input_tokens);
                events.extend(wire::stream_body(&blocks));
                sse_response(
                    events,
                    step.chunk_delay_ms,
                    Tail::End,
                    app.shutdown.clone(),
                    &request_id,
                )
            } else {
                json_response(
                    StatusCode::OK,
                    &wire::message(&message_id, &view.model, &blocks, input_tokens),
                    &request_id,
                )
            }
        }
    }
}

/// The JSON schema a request asks its answer to follow (`output_config.format` or the older
/// `output_format`), if any.
fn json_schema(body: &Value) -> Option<&Value> {
    let format = body
        .pointer("/output_config/format")
        .or_else(|| body.get("output_format"))?;
    (format.get("type").and_then(Value::as_str) == Some("json_schema"))
        .then(|| format.get("schema"))
        .flatten()
}

/// A small value that satisfies a (simple) JSON schema: required properties filled, strings
/// `"mock"`, numbers 0, the first `enum` value, the first `anyOf`/`oneOf` branch.
fn schema_instance(schema: &Value) -> Value {
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return schema_instance(first);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str),
        Some(kind) => kind.as_str(),
        None if schema.get("properties").is_some() => Some("object"),
        None => None,
    };
    match kind {
        Some("object") => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut out = serde_json::Map::new();
            if let Some(properties) = properties {
                for (name, sub) in properties {
                    if required.is_empty() || required.contains(&name.as_str()) {
                        out.insert(name.clone(), schema_instance(sub));
                    }
                }
            }
            Value::Object(out)
        }
        Some("array") => Value::Array(Vec::new()),
        Some("integer" | "number") => json!(0),
        Some("boolean") => json!(false),
        Some("null") => Value::Null,
        _ => json!("mock"),
    }
}

async fn count_tokens(
    State(app): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = wire::new_id("req");
    let mut entry = base_entry(&method, &uri, &headers, &request_id);
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) | Err(_) => {
            entry.reply = "invalid_request".into();
            entry.status = 400;
            app.record(entry);
            return invalid_request("The request body is not a JSON object.", &request_id);
        }
    };
    let view = View::from_body(&parsed);
    fill_from_body(&mut entry, &parsed, &view);
    entry.reply = "count_tokens".into();
    app.record(entry);
    json_response(
        StatusCode::OK,
        &json!({"input_tokens": wire::estimate_tokens(body.len())}),
        &request_id,
    )
}

async fn fallback(
    State(app): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let request_id = wire::new_id("req");
    let mut entry = base_entry(&method, &uri, &headers, &request_id);
    if uri.path() == "/" && (method == Method::GET || method == Method::HEAD) {
        entry.reply = "root".into();
        app.record(entry);
        return with_request_id(
            (StatusCode::OK, "mock-model\n").into_response(),
            &request_id,
        );
    }
    entry.reply = "not_found".into();
    entry.status = 404;
    app.record(entry);
    json_response(
        StatusCode::NOT_FOUND,
        &wire::error_body("not_found_error", "Not found", &request_id),
        &request_id,
    )
}

async fn get_script(State(app): State<Arc<Shared>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        app.script().to_json(),
    )
        .into_response()
}

async fn put_script(State(app): State<Arc<Shared>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match Script::from_json(&text).and_then(|script| app.set_script(script)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": error.to_string()}).to_string(),
        )
            .into_response(),
    }
}

async fn get_requests(State(app): State<Arc<Shared>>) -> Response {
    let body = serde_json::to_string(&app.requests()).unwrap_or_else(|_| "[]".to_string());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn delete_requests(State(app): State<Arc<Shared>>) -> Response {
    app.clear_requests();
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_instances_fit() {
        let schema = json!({"type": "object", "properties": {"title": {"type": "string"},
            "n": {"type": "integer"}, "opt": {"type": "boolean"}}, "required": ["title", "n"]});
        assert_eq!(schema_instance(&schema), json!({"title": "mock", "n": 0}));
        let body = json!({"output_config": {"format": {"type": "json_schema", "schema": schema}}});
        assert!(json_schema(&body).is_some());
        assert_eq!(schema_instance(&json!({"enum": ["a", "b"]})), json!("a"));
        assert!(json_schema(&json!({"model": "m"})).is_none());
    }
}
