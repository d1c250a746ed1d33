//! What the AWS sinks (`s3`, `kinesis`) share: their connection settings
//! (region, endpoint, timeouts) with their validation, in every build; and,
//! when either sink is compiled in, the SDK config built from them and the
//! classification of SDK errors (`sdk`).

#[cfg(any(feature = "s3", feature = "kinesis"))]
mod sdk;
#[cfg(any(feature = "s3", feature = "kinesis"))]
pub use sdk::{
    CREDENTIAL_SOURCES, ErrorClass, FALLBACK_REGION, check_credentials, classify, code, status,
};

pub(crate) fn default_connect_timeout_ms() -> u64 {
    5_000
}

pub(crate) fn default_request_timeout_ms() -> u64 {
    30_000
}

/// The connection settings an AWS sink table carries (`region`, `endpoint`, timeouts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConnection {
    /// Overrides the AWS chain (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// A custom endpoint (LocalStack, moto, MinIO, a VPC endpoint); the SDK also reads `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    pub connect_timeout_ms: u64,
    /// Longest single HTTP attempt.
    pub request_timeout_ms: u64,
}

impl AwsConnection {
    /// Checks the fields; the error names the field and says why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err((
                "endpoint",
                format!(
                    "`{e}` is not a URL: write it with its scheme, e.g. `http://127.0.0.1:4566`"
                ),
            ));
        }
        if let Some(r) = &self.region
            && r.trim().is_empty()
        {
            return Err(("region", "is empty; remove it to use the AWS chain".into()));
        }
        if self.connect_timeout_ms == 0 {
            return Err(("connect_timeout_ms", "must be at least 1".into()));
        }
        if self.request_timeout_ms == 0 {
            return Err(("request_timeout_ms", "must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> AwsConnection {
        AwsConnection {
            region: None,
            endpoint: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
        }
    }

    #[test]
    fn connection_fields_are_checked() {
        assert!(conn().validate().is_ok());
        let c = AwsConnection {
            endpoint: Some("127.0.0.1:4566".into()),
            ..conn()
        };
        assert_eq!(c.validate().unwrap_err().0, "endpoint");
        let c = AwsConnection {
            region: Some(" ".into()),
            ..conn()
        };
        assert_eq!(c.validate().unwrap_err().0, "region");
        let c = AwsConnection {
            request_timeout_ms: 0,
            ..conn()
        };
        assert_eq!(c.validate().unwrap_err().0, "request_timeout_ms");
    }
}
