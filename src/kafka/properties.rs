//! `[…properties]`: librdkafka properties passed through, `${VAR}` in a value
//! taken from the environment (and registered as a secret for redaction).

use std::collections::BTreeMap;

use crate::secret::expand_env;

/// Adds `[…properties]` to a librdkafka config, `${VAR}` in values taken from
/// the environment (the Kafka sink, the Kafka source and `check` share it).
#[cfg(feature = "kafka")]
pub fn set_properties(
    c: &mut rdkafka::ClientConfig,
    properties: &BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in properties {
        let value = expand_env(value).map_err(|var| {
            format!("property `{key}` needs the environment variable `{var}`, which is not set")
        })?;
        c.set(key, value);
    }
    Ok(())
}

/// Every `${VAR}` of `[…properties]` is set: else (`properties.KEY`, which
/// key needs which variable), so a config error points at the line holding
/// the variable.
pub fn check_property_vars(properties: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    for (key, value) in properties {
        expand_env(value).map_err(|var| {
            (
                format!("properties.{key}"),
                format!("`{key}` needs the environment variable `{var}`, which is not set"),
            )
        })?;
    }
    Ok(())
}

/// A property whose value stays out of `Debug` output.
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "oauthbearer.config",
        "key.pem",
        "token",
    ]
    .iter()
    .any(|s| k.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_are_named_with_their_key() {
        let mut p = BTreeMap::new();
        p.insert("sasl.username".to_owned(), "alice".to_owned());
        assert!(check_property_vars(&p).is_ok());
        p.insert(
            "sasl.password".to_owned(),
            "${INGEST_KAFKA_PROPERTIES_TEST_UNSET}".to_owned(),
        );
        let (field, message) = check_property_vars(&p).unwrap_err();
        assert_eq!(field, "properties.sasl.password");
        assert!(
            message.contains("sasl.password")
                && message.contains("INGEST_KAFKA_PROPERTIES_TEST_UNSET"),
            "{message}"
        );
    }

    #[test]
    fn secret_keys_are_recognized() {
        for k in [
            "sasl.password",
            "ssl.key.pem",
            "SASL.OAUTHBEARER.CONFIG",
            "x.token",
        ] {
            assert!(is_secret_property(k), "{k}");
        }
        for k in ["sasl.username", "security.protocol"] {
            assert!(!is_secret_property(k), "{k}");
        }
    }
}
