//! Turning a raw API reply into a typed value or a [`ClientError`].
//!
//! Any reply may be the bare error envelope `{"result":"error","message":"…"}`, and read
//! operations answer `notfound`; both are recognised from the `result` field before the body is
//! decoded into the operation's own type, so an error is never mistaken for a decode failure.

use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// The longest part of an undecodable body quoted in an error.
const QUOTE_LIMIT: usize = 120;

/// Decode `body` (the reply on `subject`) into `T`, mapping `error` and `notfound` results.
pub(crate) fn decode<T: DeserializeOwned>(subject: &str, body: &[u8]) -> Result<T, ClientError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ClientError::Decode {
            subject: subject.to_string(),
            reason: format!("{e} (body: {})", quote(body)),
        })?;
    check_result(&value)?;
    serde_json::from_value(value).map_err(|e| ClientError::Decode {
        subject: subject.to_string(),
        reason: format!("{e} (body: {})", quote(body)),
    })
}

/// Map the `result` field of a reply object to an error where it says so.
pub(crate) fn check_result(value: &serde_json::Value) -> Result<(), ClientError> {
    let result = value.get("result").and_then(|r| r.as_str()).unwrap_or_default();
    let message = || value.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_string();
    match result {
        "error" => Err(ClientError::Api { message: message() }),
        "notfound" => Err(ClientError::NotFound { message: message() }),
        _ => Ok(()),
    }
}

/// A short, printable excerpt of a body for error messages.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text.chars().take(QUOTE_LIMIT).collect();
    if text.chars().count() > QUOTE_LIMIT {
        excerpt.push('…');
    }
    if excerpt.is_empty() { "<empty>".to_string() } else { format!("{excerpt:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wadm_model::api::{DeployModelResponse, DeployResult, VersionResponse};

    #[test]
    fn error_envelope_becomes_api_error() {
        let err =
            decode::<VersionResponse>("s", br#"{"result":"error","message":"boom"}"#).unwrap_err();
        assert!(matches!(err, ClientError::Api { message } if message == "boom"));
    }

    #[test]
    fn notfound_becomes_not_found() {
        let body = br#"{"result":"notfound","message":"no app x","name":"x"}"#;
        let err = decode::<DeployModelResponse>("s", body).unwrap_err();
        assert!(matches!(err, ClientError::NotFound { message } if message == "no app x"));
    }

    #[test]
    fn success_decodes() {
        let body = br#"{"result":"acknowledged","message":"","name":"x","version":"v1"}"#;
        let ok = decode::<DeployModelResponse>("s", body).unwrap();
        assert_eq!(ok.result, DeployResult::Acknowledged);
        assert_eq!(ok.version.as_deref(), Some("v1"));
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        for body in [&b""[..], b"not json", b"[1,2]", b"{\"result\":\"success\",\"versions\":3}"] {
            let err = decode::<VersionResponse>("subj", body).unwrap_err();
            assert!(
                matches!(&err, ClientError::Decode { subject, .. } if subject == "subj"),
                "{err}"
            );
        }
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let body = vec![b'x'; 1000];
        let err = decode::<VersionResponse>("s", &body).unwrap_err().to_string();
        assert!(err.len() < 400, "{err}");
    }

    proptest::proptest! {
        #[test]
        fn any_reply_decodes_or_errors(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode::<VersionResponse>("s", &body);
            let _ = decode::<wadm_model::Status>("s", &body);
        }

        #[test]
        fn any_result_string_is_handled(result in "[a-z]{0,12}", message in ".{0,40}") {
            let body = serde_json::json!({"result": result, "message": message}).to_string();
            match decode::<DeployModelResponse>("s", body.as_bytes()) {
                Err(ClientError::Api { message: m }) => proptest::prop_assert!(result == "error" && m == message),
                Err(ClientError::NotFound { message: m }) => proptest::prop_assert!(result == "notfound" && m == message),
                Err(ClientError::Decode { .. }) => proptest::prop_assert!(result != "acknowledged"),
                Ok(reply) => proptest::prop_assert_eq!(reply.result, DeployResult::Acknowledged),
                Err(other) => proptest::prop_assert!(false, "unexpected {other}"),
            }
        }
    }
}
