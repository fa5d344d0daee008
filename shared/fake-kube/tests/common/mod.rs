//! Shared fixtures: a started server with a client, and the `Status` of a failed call.
#![allow(dead_code)]

use kube::core::Status;
use nodewright_fake_kube::FakeApiServer;

pub async fn server() -> (FakeApiServer, kube::Client) {
    let server = FakeApiServer::start().await.expect("server starts");
    let client = server.client().expect("client builds");
    (server, client)
}

/// The `Status` of a failed call, or a panic naming what came back instead.
pub fn status_of<T: std::fmt::Debug>(result: kube::Result<T>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}
