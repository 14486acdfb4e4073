//! Keeping secrets out of output: passwords in URIs masked, secret-bearing variables hidden.

use serde::{Deserialize, Serialize};

/// A configured secret (a password): serialized as the plain string, but never shown by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that hands it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// `text` with the password of every `scheme://user:password@host` in it replaced by `***`
/// (`scheme://user:***@host`; userinfo without a colon, a token, is masked whole).
pub fn mask_uris(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first `/`, `?`, `#`, whitespace or quote.
        let end = tail.find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace());
        let authority = &tail[..end.unwrap_or(tail.len())];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                let userinfo = &authority[..userinfo_end];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str("***");
                    }
                    None => out.push_str("***"),
                }
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Whether a configuration name (field or variable) holds a secret, whose value is never shown.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "credential"].iter().any(|w| name.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_uris_are_masked_and_the_rest_kept() {
        let cases = [
            ("mongodb://qadf:s3cret@db:27017/am?authSource=admin", "mongodb://qadf:***@db:27017/am?authSource=admin"),
            ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
            ("error at mongodb+srv://u:p%40ss@h.example now", "error at mongodb+srv://u:***@h.example now"),
            ("token kafka://abc@broker:9092", "token kafka://***@broker:9092"),
            ("no secret: mongodb://db:27017 and http://x/y", "no secret: mongodb://db:27017 and http://x/y"),
            ("two: a://u:1@h b://v:2@k", "two: a://u:***@h b://v:***@k"),
            ("`mongodb://u:p@h`", "`mongodb://u:***@h`"),
            ("ends with ://", "ends with ://"),
        ];
        for (text, masked) in cases {
            assert_eq!(mask_uris(text), masked, "{text}");
        }
    }

    #[test]
    fn a_secret_is_not_debug_printed_but_round_trips() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn secret_names_are_recognised() {
        assert!(is_secret_name("QADF_REDIS_PASSWORD") && is_secret_name("sasl_secret") && is_secret_name("api_token"));
        assert!(!is_secret_name("QADF_MONGODB_URI") && !is_secret_name("redis_username"));
    }
}
