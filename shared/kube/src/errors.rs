//! kube-rs errors mapped to the core's error kinds, in one place.

use kube::Error;
use nodewright_core::ports::{ErrorKind, PortError};

/// The kind of failure an HTTP status from the API server means.
pub fn kind_for_status(code: u16) -> ErrorKind {
    match code {
        404 | 410 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        429 => ErrorKind::Throttled,
        401 | 403 => ErrorKind::Unauthorized,
        400 | 405 | 413 | 415 | 422 => ErrorKind::Invalid,
        _ => ErrorKind::Unavailable,
    }
}

/// `what` names the call (`list pods`, `cordon node ip-10-0-1-5`), for the message.
pub fn from_kube(what: &str, err: Error) -> PortError {
    let kind = match &err {
        Error::Api(status) => kind_for_status(status.code),
        Error::SerdeError(_) | Error::BuildRequest(_) => ErrorKind::Invalid,
        Error::Auth(_) => ErrorKind::Unauthorized,
        // Connection failures, timeouts, TLS and protocol trouble: worth another try later.
        _ => ErrorKind::Unavailable,
    };
    PortError::new(kind, format!("{what}: {err}")).with_source(err)
}

/// The HTTP status of an API error, if it is one.
pub fn status_code(err: &Error) -> Option<u16> {
    match err {
        Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_kinds_callers_branch_on() {
        assert_eq!(kind_for_status(404), ErrorKind::NotFound);
        assert_eq!(kind_for_status(409), ErrorKind::Conflict);
        assert_eq!(kind_for_status(429), ErrorKind::Throttled);
        assert_eq!(kind_for_status(403), ErrorKind::Unauthorized);
        assert_eq!(kind_for_status(422), ErrorKind::Invalid);
        assert_eq!(kind_for_status(503), ErrorKind::Unavailable);
        assert_eq!(kind_for_status(500), ErrorKind::Unavailable);
    }
}
