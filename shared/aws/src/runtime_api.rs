//! A Lambda runtime API emulator, to run the real bootstrap binaries as Lambda runs them.
//!
//! The bootstrap is started with `AWS_LAMBDA_RUNTIME_API` pointing here; it asks for work with
//! `GET /2018-06-01/runtime/invocation/next` (long-polled until [`RuntimeApi::invoke`] queues an
//! event), and answers with `POST …/invocation/<id>/response` or `…/error`; a failed cold start
//! posts `…/init/error`. That is the whole contract between Lambda and a custom runtime
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>). Where this is more lenient
//! than Lambda: no memory or time limit is enforced on the process (the deadline is only
//! announced in `Lambda-Runtime-Deadline-Ms`), and the process is not frozen between calls.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

const PREFIX: &str = "/2018-06-01/runtime";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response(Value),
    /// The handler failed: the error document the runtime posted.
    Error(Value),
}

#[derive(Default)]
struct State {
    queued: Mutex<VecDeque<Queued>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<Value>>,
    /// When the bootstrap first asked for work: the end of its cold start.
    first_poll: Mutex<Option<Instant>>,
}

struct Queued {
    id: String,
    deadline_ms: u128,
    body: Vec<u8>,
}

/// The emulator, serving on a loopback port until dropped.
pub struct RuntimeApi {
    address: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
    next_id: Mutex<u64>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the runtime API");
        let address = listener.local_addr().expect("local address");
        let state = Arc::new(State::default());
        let served = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| route(state.clone(), request));
                    // Long polls outlive many requests; one connection per poll is what the
                    // runtime client opens anyway.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi {
            address,
            state,
            server,
            next_id: Mutex::new(0),
        }
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Starts `bootstrap` as Lambda would: the runtime API, the function's identity and the
    /// given environment (nothing inherited but `PATH`); its output goes to this process's.
    pub fn spawn(&self, bootstrap: &Path, function: &str, env: &[(String, String)]) -> Bootstrap {
        let mut command = Command::new(bootstrap);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", self.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}"))
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/12/01/[$LATEST]0123456789abcdef",
            )
            .env("_HANDLER", "bootstrap")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bootstrap.display()));
        // Kept, as CloudWatch Logs keeps a function's output, for the failure messages.
        let output = Arc::new(Mutex::new(String::new()));
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for mut stream in streams.into_iter().flatten() {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buffer[..n]);
                    output.lock().expect("output lock").push_str(&text);
                }
            });
        }
        Bootstrap {
            child,
            started: Instant::now(),
            output,
        }
    }

    /// Delivers `event` to the bootstrap and waits (up to `timeout`) for its answer.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Answer {
        let id = {
            let mut next = self.next_id.lock().expect("id lock");
            *next += 1;
            format!("00000000-0000-4000-8000-{:012}", *next)
        };
        let (tx, rx) = oneshot::channel();
        self.state
            .waiting
            .lock()
            .expect("waiting lock")
            .insert(id.clone(), tx);
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + timeout.as_millis();
        self.state.queued.lock().expect("queue lock").push_back(Queued {
            id: id.clone(),
            deadline_ms,
            body: serde_json::to_vec(event).expect("event JSON"),
        });
        self.state.arrived.notify_one();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            _ => panic!(
                "invocation {id} got no answer in {timeout:?} (init error: {:?})",
                self.init_error()
            ),
        }
    }

    /// What the bootstrap posted to `/init/error`, if its cold start failed.
    pub fn init_error(&self) -> Option<Value> {
        self.state.init_error.lock().expect("init lock").clone()
    }

    /// Waits until the bootstrap first asks for work (its cold start is over); returns how long
    /// after it started that was. A cold start that fails — an init error posted, or the process
    /// ending first, which Lambda reports as `Runtime.ExitError` — is the error, with the output.
    pub async fn cold_start(&self, bootstrap: &mut Bootstrap, timeout: Duration) -> Result<Duration, Value> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(error) = self.init_error() {
                return Err(error);
            }
            if let Some(status) = bootstrap.exited() {
                // The reader threads may still be draining the pipes.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(serde_json::json!({
                    "errorType": "Runtime.ExitError",
                    "errorMessage": format!("the bootstrap exited ({status}) during its cold start"),
                    "output": bootstrap.output(),
                }));
            }
            if let Some(at) = *self.state.first_poll.lock().expect("poll lock") {
                return Ok(at.saturating_duration_since(bootstrap.started));
            }
            assert!(
                Instant::now() < until,
                "the bootstrap did not start within {timeout:?}; its output:\n{}",
                bootstrap.output()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A running bootstrap process, killed when dropped.
pub struct Bootstrap {
    child: Child,
    started: Instant,
    output: Arc<Mutex<String>>,
}

impl Bootstrap {
    /// Everything the process has printed so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn route(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, "not a runtime API path"));
    };
    if method == Method::GET && rest == "/invocation/next" {
        return Ok(next(&state).await);
    }
    if method != Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "unexpected method"));
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "unreadable body")),
    };
    let document = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if rest == "/init/error" {
        *state.init_error.lock().expect("init lock") = Some(document);
        return Ok(reply(StatusCode::ACCEPTED, "{}"));
    }
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let answer = match parts.as_slice() {
        ["invocation", _, "response"] => Answer::Response(document),
        ["invocation", _, "error"] => Answer::Error(document),
        _ => return Ok(reply(StatusCode::NOT_FOUND, "unknown runtime API path")),
    };
    let waiter = state.waiting.lock().expect("waiting lock").remove(parts[1]);
    match waiter {
        Some(tx) => {
            let _ = tx.send(answer);
            Ok(reply(StatusCode::ACCEPTED, "{}"))
        }
        None => Ok(reply(
            StatusCode::BAD_REQUEST,
            "no such invocation, or already answered",
        )),
    }
}

async fn next(state: &State) -> Response<Full<Bytes>> {
    state
        .first_poll
        .lock()
        .expect("poll lock")
        .get_or_insert_with(Instant::now);
    loop {
        // Registered before looking, so an event queued in between is not missed.
        let arrived = state.arrived.notified();
        if let Some(queued) = state.queued.lock().expect("queue lock").pop_front() {
            let mut response = Response::new(Full::new(Bytes::from(queued.body)));
            let headers = response.headers_mut();
            let header = |value: String| value.parse().expect("header value");
            headers.insert("lambda-runtime-aws-request-id", header(queued.id));
            headers.insert(
                "lambda-runtime-deadline-ms",
                header(queued.deadline_ms.to_string()),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                header("arn:aws:lambda:us-east-1:123456789012:function:nodewright".to_string()),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                header("Root=1-00000000-000000000000000000000000".to_string()),
            );
            headers.insert("content-type", header("application/json".to_string()));
            return response;
        }
        arrived.await;
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}
