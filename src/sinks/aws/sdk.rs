//! The SDK side of the AWS sinks: the SDK config from an [`AwsConnection`]
//! (region, endpoint, credentials chain, timeouts, no SDK retries) and the
//! classification of SDK errors into retry or fatal.

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
// The error types are aws-smithy's, re-exported alike by every service crate:
// take them from whichever one this build has.
#[cfg(not(feature = "s3"))]
use aws_sdk_kinesis::config::ProvideCredentials;
#[cfg(not(feature = "s3"))]
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
#[cfg(feature = "s3")]
use aws_sdk_s3::config::ProvideCredentials;
#[cfg(feature = "s3")]
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::AwsConnection;

/// The region used when neither the sink's `region` nor the AWS chain gives one.
pub const FALLBACK_REGION: &str = "us-east-1";

impl AwsConnection {
    /// The SDK config: region from the field, else the AWS chain, else
    /// [`FALLBACK_REGION`]; credentials from the standard chain (env, profile,
    /// web identity, ECS, IMDS); SDK retries off, since the pipeline retries.
    pub async fn sdk_config(&self) -> SdkConfig {
        let region = RegionProviderChain::first_try(self.region.clone().map(Region::new))
            .or_default_provider()
            .or_else(Region::from_static(FALLBACK_REGION));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
                    .operation_attempt_timeout(Duration::from_millis(self.request_timeout_ms))
                    .build(),
            );
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        loader.load().await
    }
}

/// Where the standard AWS chain looks for credentials, in its order.
pub const CREDENTIAL_SOURCES: &str = "the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), \
the profile files (~/.aws/credentials and ~/.aws/config, profile AWS_PROFILE or default), \
web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN), the ECS container endpoint, \
and EC2 instance metadata (IMDS)";

/// Resolves credentials through `sdk`'s chain once, so that a machine with none
/// hears so (with where the chain looked) instead of an SDK dispatch failure
/// that names only the last place it tried (IMDS).
pub async fn check_credentials(sdk: &SdkConfig) -> Result<(), String> {
    let Some(provider) = sdk.credentials_provider() else {
        return Err("no AWS credentials provider is configured".into());
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut last = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                last.push_str(": ");
                last.push_str(&cause.to_string());
                source = cause.source();
            }
            Err(format!(
                "no AWS credentials found: tried {CREDENTIAL_SOURCES}; the last said: {last}"
            ))
        }
    }
}

/// What to do about an SDK error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorClass {
    /// Network trouble, timeouts, throttling, 5xx: try again.
    Retry(String),
    /// Retrying cannot help (missing resource, access denied, bad request).
    Fatal(String),
}

impl ErrorClass {
    pub fn message(&self) -> &str {
        match self {
            ErrorClass::Retry(m) | ErrorClass::Fatal(m) => m,
        }
    }

    /// These records failed this way: to retry, or rejected with the message.
    pub fn apply(self, indexes: &[usize], out: &mut crate::sinks::RecordResults) {
        match &self {
            ErrorClass::Retry(_) => out.failed.extend_from_slice(indexes),
            ErrorClass::Fatal(m) => out.rejected.extend(indexes.iter().map(|&i| (i, m.clone()))),
        }
        out.note(self.into_message());
    }

    /// The whole call failed this way.
    pub fn into_sink_error(self, sink: &str) -> crate::sinks::SinkError {
        match self {
            ErrorClass::Retry(m) => crate::sinks::SinkError::retryable(sink, m),
            ErrorClass::Fatal(m) => crate::sinks::SinkError::fatal(sink, m),
        }
    }

    fn into_message(self) -> String {
        match self {
            ErrorClass::Retry(m) | ErrorClass::Fatal(m) => m,
        }
    }
}

/// Error codes that mean "slow down" or "try again" whatever the HTTP status.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottlingException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "IDPCommunicationError",
];

/// Classifies an SDK error; `what` says what was being done (`PUT s3://b/k`).
pub fn classify<E>(what: &str, err: &SdkError<E>) -> ErrorClass
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = DisplayErrorContext(err);
    match err {
        SdkError::ConstructionFailure(_) => {
            ErrorClass::Fatal(format!("{what}: cannot build the request: {detail}"))
        }
        SdkError::TimeoutError(_) => ErrorClass::Retry(format!("{what}: timed out: {detail}")),
        SdkError::DispatchFailure(_) => {
            ErrorClass::Retry(format!("{what}: cannot reach the endpoint: {detail}"))
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            ErrorClass::Retry(format!(
                "{what}: unreadable response (HTTP {status}): {detail}"
            ))
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code().unwrap_or("");
            let message = s.err().message().unwrap_or("");
            let text = if code.is_empty() && message.is_empty() {
                format!("{what}: HTTP {status}")
            } else {
                format!("{what}: HTTP {status} {code}: {message}")
            };
            if status >= 500 || status == 429 || RETRYABLE_CODES.contains(&code) {
                ErrorClass::Retry(text)
            } else {
                ErrorClass::Fatal(text)
            }
        }
        _ => ErrorClass::Retry(format!("{what}: {detail}")),
    }
}

/// The HTTP status of a service error, if the error is one.
pub fn status<E>(err: &SdkError<E>) -> Option<u16> {
    match err {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        SdkError::ResponseError(r) => Some(r.raw().status().as_u16()),
        _ => None,
    }
}

/// The error code of a service error, if the service sent one.
pub fn code<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Built from S3's error types (the classification is the same for every service).
    #[cfg(feature = "s3")]
    use aws_sdk_s3::operation::put_object::PutObjectError;

    #[cfg(feature = "s3")]
    fn service_error(status: u16, code: &str) -> SdkError<PutObjectError> {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::ErrorMetadata;
        use aws_sdk_s3::primitives::SdkBody;
        SdkError::service_error(
            PutObjectError::generic(ErrorMetadata::builder().code(code).message("m").build()),
            HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()),
        )
    }

    #[cfg(feature = "s3")]
    #[test]
    fn sdk_errors_are_classified() {
        let retry =
            |e: &SdkError<PutObjectError>| matches!(classify("PUT", e), ErrorClass::Retry(_));
        assert!(retry(&service_error(503, "SlowDown")));
        assert!(retry(&service_error(500, "InternalError")));
        assert!(retry(&service_error(400, "ThrottlingException")));
        assert!(retry(&service_error(
            400,
            "ProvisionedThroughputExceededException"
        )));
        assert!(!retry(&service_error(404, "NoSuchBucket")));
        assert!(!retry(&service_error(403, "AccessDenied")));
        assert!(!retry(&service_error(400, "ResourceNotFoundException")));
        assert!(retry(&SdkError::timeout_error("slow")));
        assert!(retry(&SdkError::dispatch_failure(
            aws_sdk_s3::error::ConnectorError::io("connection refused".into())
        )));
        assert!(!retry(&SdkError::construction_failure("bad input")));
        let ErrorClass::Fatal(m) = classify("PUT s3://b/k", &service_error(404, "NoSuchBucket"))
        else {
            panic!()
        };
        assert_eq!(m, "PUT s3://b/k: HTTP 404 NoSuchBucket: m");
        assert_eq!(status(&service_error(404, "X")), Some(404));
        assert_eq!(code(&service_error(404, "X")), Some("X"));
    }

    #[tokio::test]
    async fn the_region_field_wins_over_the_chain() {
        let c = AwsConnection {
            region: Some("eu-west-3".into()),
            endpoint: Some("http://127.0.0.1:1".into()),
            connect_timeout_ms: 1_000,
            request_timeout_ms: 1_000,
        };
        let sdk = c.sdk_config().await;
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-3"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:1"));
        assert_eq!(sdk.retry_config().map(|r| r.max_attempts()), Some(1));
    }
}
