//! AWS error codes mapped to the core's error kinds, in one place.
//!
//! Every AWS call in this crate turns its failure into a [`PortError`] here, keeping the SDK
//! error as the source, so callers branch on [`ErrorKind`] and never on codes or messages.
//!
//! # Retries
//!
//! Throttling and transient failures (`RequestLimitExceeded`, `ThrottlingException`, 5xx,
//! timeouts, connection failures) are retried by the SDK's *standard* retry strategy, not by a
//! helper of ours: exponential backoff with full jitter, a bounded number of attempts and a
//! client-side retry quota, configured once per client from
//! [`crate::config::RetryPolicy`]. A second retry loop on top would multiply attempts. A port
//! sees `Throttled` or `Unavailable` only once those attempts are spent; the caller then gives
//! up for this round (the next round, a minute later at most, tries again).
//! Non-idempotent calls are safe to retry: CreateFleet carries a client token, and a launch
//! template that already exists is reused.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use nodewright_core::ports::{ErrorKind, PortError};

/// Codes that mean "no capacity for this offering right now". EC2 reports some of these per
/// override in a CreateFleet's `errorSet`. Account limits (`VcpuLimitExceeded`,
/// `MaxSpotInstanceCountExceeded`) are treated the same way: the offering cannot be bought now,
/// and another capacity type or family may still work.
const CAPACITY: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientFreeAddressesInSubnet",
    "ReservationCapacityExceeded",
    "Unsupported",
    "UnfulfillableCapacity",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
    "VcpuLimitExceeded",
];

const THROTTLED: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "EC2ThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceededException",
    "TooManyRequestsException",
    "LimitExceededException",
    "SlowDown",
];

const NOT_FOUND: &[&str] = &[
    "ParameterNotFound",
    "ResourceNotFoundException",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "NoSuchEntity",
];

/// A lost race: someone else wrote first, or the same idempotency token was used with other
/// parameters (re-read and act on what is there).
const CONFLICT: &[&str] = &[
    "ConditionalCheckFailedException",
    "TransactionConflict",
    "TransactionConflictException",
    "TransactionCanceledException",
    "IdempotentParameterMismatch",
    "InvalidLaunchTemplateName.AlreadyExistsException",
    "ParameterAlreadyExists",
    "EntityAlreadyExists",
    "ResourceInUseException",
    "DeleteConflict",
];

/// What EC2 says (`InvalidParameterValue`) when a launch names an instance profile IAM has
/// made but EC2 cannot see yet: IAM is eventually consistent, so this one is retryable.
pub const INVALID_INSTANCE_PROFILE: &str = "Invalid IAM Instance Profile";

const UNAUTHORIZED: &[&str] = &[
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
    "OptInRequired",
];

const INVALID: &[&str] = &[
    "ValidationException",
    "ValidationError",
    "MissingParameter",
    "UnknownParameter",
    "SerializationException",
    "DryRunOperation",
];

const UNAVAILABLE: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// The kind an AWS error code means, or `None` for a code this table does not know.
pub fn kind_for_code(code: &str) -> Option<ErrorKind> {
    // awsJson services may send the code as `namespace#Code`.
    let code = code.rsplit('#').next().unwrap_or(code);
    let is = |list: &[&str]| list.contains(&code);
    Some(if is(CAPACITY) {
        ErrorKind::InsufficientCapacity
    } else if is(THROTTLED) {
        ErrorKind::Throttled
    } else if is(NOT_FOUND) || code.ends_with(".NotFound") || code.ends_with(".NotFoundException") {
        ErrorKind::NotFound
    } else if is(CONFLICT) {
        ErrorKind::Conflict
    } else if is(UNAUTHORIZED) || code.starts_with("AuthFailure.") {
        ErrorKind::Unauthorized
    } else if is(INVALID) || code.starts_with("InvalidParameter") || code.starts_with("Invalid") {
        // Every other `Invalid…` code names a malformed request or a bad id in configuration.
        ErrorKind::Invalid
    } else if is(UNAVAILABLE) {
        ErrorKind::Unavailable
    } else {
        return None;
    })
}

/// The kind an error code and its message mean: [`kind_for_code`], except that an instance
/// profile EC2 cannot see yet ([`INVALID_INSTANCE_PROFILE`]) is `Unavailable`, to be retried.
pub fn kind_for(code: &str, message: Option<&str>) -> Option<ErrorKind> {
    let eventually_consistent = code.starts_with("InvalidParameterValue")
        && message.is_some_and(|m| {
            m.to_ascii_lowercase()
                .contains(&INVALID_INSTANCE_PROFILE.to_ascii_lowercase())
        });
    if eventually_consistent {
        return Some(ErrorKind::Unavailable);
    }
    kind_for_code(code)
}

/// The kind an HTTP status means when the code is unknown.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        429 => ErrorKind::Throttled,
        400..=499 => ErrorKind::Invalid,
        _ => ErrorKind::Unavailable,
    }
}

/// The kind of an SDK failure: by error code, then HTTP status; failures that never got a
/// response (timeouts, connection errors, unreadable responses) are `Unavailable`, and a request
/// the SDK could not even build is `Invalid`.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorKind {
    match err {
        SdkError::ConstructionFailure(_) => ErrorKind::Invalid,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorKind::Unavailable
        }
        SdkError::ServiceError(service) => service
            .err()
            .code()
            .and_then(|code| kind_for(code, service.err().message()))
            .unwrap_or_else(|| kind_for_status(service.raw().status().as_u16())),
        _ => ErrorKind::Unavailable,
    }
}

/// Turns an SDK failure of `operation` into a [`PortError`] of its kind, keeping the SDK error
/// as the source and its code and message in the message.
pub fn from_sdk<E>(operation: &str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = classify(&err);
    let message = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{operation}: {code}: {message}"),
        (Some(code), None) => format!("{operation}: {code}"),
        _ => format!("{operation}: {}", DisplayErrorContext(&err)),
    };
    PortError::new(kind, message).with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::{ConnectorError, ServiceError};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(code: Option<&str>, status: u16) -> SdkError<ErrorMetadata, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("boom");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(StatusCode::try_from(status).expect("status"), SdkBody::empty());
        SdkError::ServiceError(ServiceError::builder().source(meta.build()).raw(raw).build())
    }

    #[test]
    fn capacity_codes_are_insufficient_capacity() {
        for code in [
            "InsufficientInstanceCapacity",
            "InsufficientCapacity",
            "InsufficientHostCapacity",
            "InsufficientReservedInstanceCapacity",
            "Unsupported",
            "UnfulfillableCapacity",
            "MaxSpotInstanceCountExceeded",
            "SpotMaxPriceTooLow",
            "VcpuLimitExceeded",
        ] {
            assert_eq!(
                kind_for_code(code),
                Some(ErrorKind::InsufficientCapacity),
                "{code}"
            );
        }
    }

    #[test]
    fn rate_limits_are_throttled() {
        for code in [
            "RequestLimitExceeded",
            "Throttling",
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "TooManyRequestsException",
        ] {
            assert_eq!(kind_for_code(code), Some(ErrorKind::Throttled), "{code}");
        }
    }

    #[test]
    fn missing_objects_are_not_found() {
        for code in [
            "InvalidInstanceID.NotFound",
            "InvalidLaunchTemplateName.NotFoundException",
            "InvalidLaunchTemplateId.NotFound",
            "ParameterNotFound",
            "ResourceNotFoundException",
        ] {
            assert_eq!(kind_for_code(code), Some(ErrorKind::NotFound), "{code}");
        }
    }

    #[test]
    fn lost_races_and_reused_tokens_are_conflicts() {
        for code in [
            "ConditionalCheckFailedException",
            "TransactionConflict",
            "IdempotentParameterMismatch",
            "InvalidLaunchTemplateName.AlreadyExistsException",
        ] {
            assert_eq!(kind_for_code(code), Some(ErrorKind::Conflict), "{code}");
        }
    }

    #[test]
    fn permission_failures_are_unauthorized() {
        for code in [
            "UnauthorizedOperation",
            "AccessDenied",
            "AuthFailure",
            "AccessDeniedException",
        ] {
            assert_eq!(kind_for_code(code), Some(ErrorKind::Unauthorized), "{code}");
        }
    }

    #[test]
    fn an_instance_profile_iam_has_not_propagated_yet_is_retryable() {
        let message = Some(
            "Value (nodewright_demo_0123456789abcdef) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
        );
        let kind = kind_for("InvalidParameterValue", message);
        assert_eq!(kind, Some(ErrorKind::Unavailable));
        assert!(kind.is_some_and(ErrorKind::is_retryable));
        let err = service_error(Some("InvalidParameterValue"), 400);
        assert_eq!(
            classify(&err),
            ErrorKind::Invalid,
            "other bad values stay invalid"
        );
        assert_eq!(
            kind_for("InvalidParameterValue", Some("Invalid BlockDeviceMapping")),
            Some(ErrorKind::Invalid)
        );
        assert_eq!(kind_for_code("DeleteConflict"), Some(ErrorKind::Conflict));
    }

    #[test]
    fn malformed_requests_are_invalid() {
        for code in [
            "InvalidParameterValue",
            "InvalidParameterCombination",
            "ValidationException",
            "InvalidUserData.Malformed",
        ] {
            assert_eq!(kind_for_code(code), Some(ErrorKind::Invalid), "{code}");
        }
    }

    #[test]
    fn json_codes_with_a_namespace_are_read_by_their_last_part() {
        assert_eq!(
            kind_for_code("com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"),
            Some(ErrorKind::Conflict)
        );
    }

    #[test]
    fn unknown_codes_fall_back_to_the_http_status() {
        assert_eq!(kind_for_code("SomethingNew"), None);
        assert_eq!(
            classify(&service_error(Some("SomethingNew"), 503)),
            ErrorKind::Unavailable
        );
        assert_eq!(
            classify(&service_error(Some("SomethingNew"), 500)),
            ErrorKind::Unavailable
        );
        assert_eq!(classify(&service_error(None, 429)), ErrorKind::Throttled);
        assert_eq!(classify(&service_error(None, 403)), ErrorKind::Unauthorized);
        assert_eq!(classify(&service_error(None, 400)), ErrorKind::Invalid);
    }

    #[test]
    fn known_codes_win_over_the_http_status() {
        assert_eq!(
            classify(&service_error(Some("InsufficientInstanceCapacity"), 500)),
            ErrorKind::InsufficientCapacity
        );
    }

    #[test]
    fn failures_without_a_response_are_unavailable() {
        let timeout: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::timeout_error(std::io::Error::other("timed out"));
        assert_eq!(classify(&timeout), ErrorKind::Unavailable);
        let dispatch: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(std::io::Error::other("refused"))));
        assert_eq!(classify(&dispatch), ErrorKind::Unavailable);
        let construction: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::construction_failure(std::io::Error::other("bad input"));
        assert_eq!(classify(&construction), ErrorKind::Invalid);
    }

    #[test]
    fn port_errors_keep_the_code_message_and_source() {
        let err = from_sdk(
            "CreateFleet",
            service_error(Some("InsufficientInstanceCapacity"), 400),
        );
        assert_eq!(err.kind, ErrorKind::InsufficientCapacity);
        assert!(
            err.message
                .contains("CreateFleet: InsufficientInstanceCapacity: boom"),
            "{}",
            err.message
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
