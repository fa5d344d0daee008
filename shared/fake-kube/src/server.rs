//! The HTTP side: a hyper server on 127.0.0.1, the request log, and injected faults.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::Error;
use crate::router::{self, Call, Verb};
use crate::store::State;

/// One request as the server saw it, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: Method,
    pub path: String,
    /// The raw (still percent-encoded) query string, empty when there is none.
    pub query: String,
    /// The API verb, when the path and method name one the server serves.
    pub verb: Option<Verb>,
    pub status: u16,
}

impl RequestRecord {
    /// A decoded query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Which requests a fault applies to. Every part left unset matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMatcher {
    verb: Option<Verb>,
    method: Option<Method>,
    path_prefix: Option<String>,
}

impl RequestMatcher {
    pub fn any() -> Self {
        RequestMatcher::default()
    }

    pub fn verb(mut self, verb: Verb) -> Self {
        self.verb = Some(verb);
        self
    }

    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Matches paths that start with `prefix`, e.g. `/api/v1/namespaces/default/pods/web-0/eviction`.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    fn matches(&self, method: &Method, path: &str, verb: Option<Verb>) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self.verb.is_none_or(|v| Some(v) == verb)
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|p| path.starts_with(p.as_str()))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub matcher: RequestMatcher,
    pub code: u16,
    pub remaining: usize,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub log: Mutex<Vec<RequestRecord>>,
    pub faults: Mutex<Vec<Fault>>,
    pub address: SocketAddr,
}

/// Locks a mutex, carrying on past a panicked holder: the state is plain data and a test that
/// panicked mid-request has already failed.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts connections until the task is aborted. Connections live in a `JoinSet` owned by
/// this task, so aborting it (dropping the server) also closes connections a client pooled.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |request| handle(shared.clone(), request));
                        if let Err(error) =
                            http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                        {
                            tracing::debug!(%error, "fake API server connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "fake API server could not accept a connection");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (verb, result) = match body.collect().await {
        Ok(collected) => {
            let body = collected.to_bytes();
            let query: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes())
                .into_owned()
                .collect();
            let call = Call {
                method: &parts.method,
                query: &query,
                content_type: &content_type,
                body: &body,
            };
            // A bug in the fake answers 500 with the panic, rather than dropping the connection.
            std::panic::catch_unwind(AssertUnwindSafe(|| respond(&shared, &path, &call))).unwrap_or_else(
                |panic| {
                    let detail = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    (
                        None,
                        Err(Error::Internal(format!("the fake API server panicked: {detail}"))),
                    )
                },
            )
        }
        Err(error) => (
            None,
            Err(Error::BadRequest(format!(
                "cannot read the request body: {error}"
            ))),
        ),
    };
    let (code, body) = match result {
        Ok((code, body)) => (code, body),
        Err(error) => (error.code(), error.status()),
    };
    lock(&shared.log).push(RequestRecord {
        method: parts.method.clone(),
        path,
        query: raw_query,
        verb,
        status: code,
    });
    Ok(response(code, &body))
}

fn respond(shared: &Shared, path: &str, call: &Call) -> (Option<Verb>, Result<(u16, Value), Error>) {
    let address = shared.address.to_string();
    let mut state = lock(&shared.state);
    let route = match router::route(&state, path, &address) {
        Ok(route) => route,
        Err(error) => return (None, Err(error)),
    };
    let verb = router::verb(&route, call);
    if let Some(code) = take_fault(shared, call.method, path, verb) {
        return (verb, Err(Error::Injected { code }));
    }
    (verb, router::execute(&mut state, &route, call))
}

fn take_fault(shared: &Shared, method: &Method, path: &str, verb: Option<Verb>) -> Option<u16> {
    let mut faults = lock(&shared.faults);
    let fault = faults
        .iter_mut()
        .find(|f| f.remaining > 0 && f.matcher.matches(method, path, verb))?;
    fault.remaining -= 1;
    let code = fault.code;
    faults.retain(|f| f.remaining > 0);
    Some(code)
}

fn response(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let (content_type, bytes) = match body {
        Value::String(text) => ("text/plain; charset=utf-8", Bytes::from(text.clone())),
        other => ("application/json", Bytes::from(other.to_string())),
    };
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
