//! Kafka's rule for topic names.

/// The longest legal topic name.
const MAX_TOPIC_LEN: usize = 249;

/// A legal Kafka topic name: 1 to 249 ASCII letters, digits, `.`, `_` and `-`.
pub fn check_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(format!("`{topic}`: a topic name has 1 to 249 characters"));
    }
    if topic == "." || topic == ".." {
        return Err(format!("`{topic}` is not a legal topic name"));
    }
    match topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "`{topic}` has `{c}`: a topic name has only ASCII letters, digits, `.`, `_` and `-`"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_and_illegal_names() {
        for ok in ["t", "a.b_c-1", &"t".repeat(249)] {
            assert!(check_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"t".repeat(250)] {
            assert!(check_topic_name(bad).is_err(), "{bad}");
        }
    }
}
