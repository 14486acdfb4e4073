//! `Security`: how the Kafka clients of this crate connect — TLS (rustls, the CA from a PEM file
//! or the system's roots) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) — for rskafka (fetch,
//! produce) and krafka (group membership) alike. The password is never printed.

use std::sync::Arc;

use qadf_core_types::{KafkaSecurityProtocol, SaslMechanism, StreamingConfig};

use crate::error::KafkaError;

/// TLS and SASL settings of a Kafka connection (the default: plain TCP, no authentication).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// Transport and authentication.
    pub protocol: KafkaSecurityProtocol,
    /// SASL mechanism (with a SASL protocol).
    pub mechanism: SaslMechanism,
    /// SASL user.
    pub username: String,
    /// SASL password.
    pub password: qadf_core_types::secret::Secret,
    /// PEM of the CA that signed the brokers' certificates (`None`: the system's roots).
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())))
            .finish()
    }
}

impl Security {
    /// The settings of the shared configuration (`kafka_security_protocol`, `kafka_sasl_*`,
    /// `kafka_tls_ca_file`, read now).
    pub fn from_streaming(c: &StreamingConfig) -> Result<Security, KafkaError> {
        let ca_pem = if c.kafka_tls_ca_file.is_empty() {
            None
        } else {
            Some(
                std::fs::read(&c.kafka_tls_ca_file)
                    .map_err(|e| KafkaError::Config(format!("kafka_tls_ca_file {}: {e}", c.kafka_tls_ca_file)))?,
            )
        };
        Ok(Security {
            protocol: c.kafka_security_protocol,
            mechanism: c.kafka_sasl_mechanism,
            username: c.kafka_sasl_username.clone(),
            password: c.kafka_sasl_password.clone(),
            ca_pem,
        })
    }

    /// The rustls client configuration for rskafka (`None` without TLS).
    pub(crate) fn rustls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, KafkaError> {
        if !self.protocol.tls() {
            return Ok(None);
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                use rustls::pki_types::pem::PemObject;
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| KafkaError::Config(format!("kafka_tls_ca_file: {e}")))?;
                    roots.add(cert).map_err(|e| KafkaError::Config(format!("kafka_tls_ca_file: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(KafkaError::Config("kafka_tls_ca_file holds no certificate".to_owned()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(KafkaError::Config(
                        "no system root certificates found: set kafka_tls_ca_file".to_owned(),
                    ));
                }
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| KafkaError::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(Arc::new(config)))
    }

    /// The SASL configuration for rskafka (`None` without SASL).
    pub(crate) fn rskafka_sasl(&self) -> Option<rskafka::client::SaslConfig> {
        if !self.protocol.sasl() {
            return None;
        }
        let credentials = rskafka::client::Credentials::new(self.username.clone(), self.password.expose().to_owned());
        Some(match self.mechanism {
            SaslMechanism::Plain => rskafka::client::SaslConfig::Plain(credentials),
            SaslMechanism::ScramSha256 => rskafka::client::SaslConfig::ScramSha256(credentials),
            SaslMechanism::ScramSha512 => rskafka::client::SaslConfig::ScramSha512(credentials),
        })
    }

    /// The same settings for krafka.
    pub(crate) fn krafka(&self) -> krafka::auth::AuthConfig {
        use krafka::auth::{AuthConfig, TlsConfig};
        let (user, password) = (self.username.clone(), self.password.expose().to_owned());
        let auth = match (self.protocol.sasl(), self.mechanism) {
            (false, _) => AuthConfig::plaintext(),
            (true, SaslMechanism::Plain) => AuthConfig::sasl_plain(user, password),
            (true, SaslMechanism::ScramSha256) => AuthConfig::sasl_scram_sha256(user, password),
            (true, SaslMechanism::ScramSha512) => AuthConfig::sasl_scram_sha512(user, password),
        };
        if !self.protocol.tls() {
            return auth;
        }
        let tls = match &self.ca_pem {
            Some(pem) => TlsConfig::new().with_ca_cert_pem(pem.clone()),
            None => TlsConfig::new().with_native_roots(),
        };
        if self.protocol.sasl() { auth.with_tls(tls) } else { AuthConfig::ssl(tls) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secured(protocol: KafkaSecurityProtocol, ca_pem: Option<&[u8]>) -> Security {
        Security {
            protocol,
            mechanism: SaslMechanism::ScramSha512,
            username: "qadf".to_owned(),
            password: qadf_core_types::secret::Secret::new("s3cret-value"),
            ca_pem: ca_pem.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn plaintext_has_neither_tls_nor_sasl() {
        let s = Security::default();
        assert!(s.rustls().unwrap().is_none() && s.rskafka_sasl().is_none());
    }

    #[test]
    fn sasl_over_tls_trusts_the_configured_ca_and_never_shows_the_password() {
        let s = secured(KafkaSecurityProtocol::SaslSsl, Some(include_bytes!("testdata/test-ca.pem")));
        assert!(s.rustls().unwrap().is_some());
        assert!(matches!(s.rskafka_sasl(), Some(rskafka::client::SaslConfig::ScramSha512(c)) if c.username == "qadf"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret-value") && shown.contains("qadf"), "{shown}");
        let plain_sasl = secured(KafkaSecurityProtocol::SaslPlaintext, None);
        assert!(plain_sasl.rustls().unwrap().is_none() && plain_sasl.rskafka_sasl().is_some());
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_by_name() {
        let s = secured(KafkaSecurityProtocol::Ssl, Some(b"not a certificate"));
        let err = s.rustls().unwrap_err().to_string();
        assert!(err.contains("kafka_tls_ca_file"), "{err}");
        let missing = StreamingConfig {
            kafka_security_protocol: KafkaSecurityProtocol::Ssl,
            kafka_tls_ca_file: "/nowhere/ca.pem".to_owned(),
            ..StreamingConfig::default()
        };
        let err = Security::from_streaming(&missing).unwrap_err().to_string();
        assert!(err.contains("kafka_tls_ca_file /nowhere/ca.pem"), "{err}");
    }
}
