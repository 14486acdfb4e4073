//! `RedisCache`: the `Cache` trait on Redis, through a pooled, health-checked sync connection.
//!
//! [`Cache::put`] values are stored in bincode so they come back as the type they went in (an
//! integer stays an integer, `"123"` stays a string, a time stays a time); [`Cache::put_text`]
//! stores the text as is (the live view's JSON, readable by `redis-cli` and any client). A connection is checked (PING) when taken
//! from the pool, so after a Redis restart the next call reconnects instead of failing forever.

use std::time::Duration;

use qadf_core_types::{BackendError, BackendErrorKind, Cache, Value};
use redis::{Commands, IntoConnectionInfo};

/// A Redis cache; every key is used as given (build keys with [`crate::keys`]).
pub struct RedisCache {
    pool: r2d2::Pool<redis::Client>,
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::new(BackendErrorKind::Unavailable, "redis", e.to_string())
}

impl RedisCache {
    /// Connects to `redis://host:port/db` with a pool of up to 4 connections.
    pub fn connect(url: &str, timeout: Duration) -> Result<RedisCache, BackendError> {
        let client = redis::Client::open(url).map_err(|e| {
            let url = qadf_core_types::secret::mask_uris(url);
            BackendError::new(BackendErrorKind::Rejected, "redis", format!("bad URL {url}: {e}"))
        })?;
        Ok(RedisCache::with_client(client, timeout))
    }

    /// Connects to the configured host, port, database, ACL user and password (the password is
    /// handed to the server only, never into a URL or a message).
    pub fn from_config(
        config: &qadf_core_types::StreamingConfig,
        timeout: Duration,
    ) -> Result<RedisCache, BackendError> {
        let mut settings = redis::RedisConnectionInfo::default().set_db(config.redis_db);
        if !config.redis_username.is_empty() {
            settings = settings.set_username(&config.redis_username);
        }
        if !config.redis_password.is_empty() {
            settings = settings.set_password(config.redis_password.expose());
        }
        let rejected = |e: String| BackendError::new(BackendErrorKind::Rejected, "redis", e);
        let address = if config.redis_tls {
            // rediss://: TLS, the server's name checked against its certificate.
            format!("rediss://{}:{}", config.redis_host, config.redis_port)
        } else {
            format!("redis://{}:{}", config.redis_host, config.redis_port)
        };
        let info =
            address.as_str().into_connection_info().map_err(|e| rejected(e.to_string()))?.set_redis_settings(settings);
        let client = if config.redis_tls && !config.redis_tls_ca_file.is_empty() {
            let ca = std::fs::read(&config.redis_tls_ca_file)
                .map_err(|e| rejected(format!("redis_tls_ca_file {}: {e}", config.redis_tls_ca_file)))?;
            redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(ca) })
        } else {
            redis::Client::open(info)
        }
        .map_err(|e| rejected(e.to_string()))?;
        Ok(RedisCache::with_client(client, timeout))
    }

    fn with_client(client: redis::Client, timeout: Duration) -> RedisCache {
        let pool = r2d2::Pool::builder()
            .max_size(4)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .test_on_check_out(true)
            .build_unchecked(client);
        RedisCache { pool }
    }

    fn connection(&self) -> Result<r2d2::PooledConnection<redis::Client>, BackendError> {
        self.pool.get().map_err(unavailable)
    }

    /// Writes many entries in one pipelined round trip.
    pub fn put_many(&self, entries: &[(String, Value)], ttl: Duration) -> Result<(), BackendError> {
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.pset_ex(key, encode(value)?, ttl_millis(ttl)).ignore();
        }
        pipe.query::<()>(&mut *self.connection()?).map_err(unavailable)
    }

    /// Answers PING.
    pub fn ping(&self) -> Result<(), BackendError> {
        redis::cmd("PING").query::<String>(&mut *self.connection()?).map(|_| ()).map_err(unavailable)
    }
}

fn encode(value: &Value) -> Result<Vec<u8>, BackendError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| BackendError::new(BackendErrorKind::Rejected, "redis", e.to_string()))
}

fn ttl_millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

impl Cache for RedisCache {
    fn put(&self, key: &str, value: &Value, ttl: Duration) -> Result<(), BackendError> {
        self.connection()?.pset_ex::<_, _, ()>(key, encode(value)?, ttl_millis(ttl)).map_err(unavailable)
    }

    fn put_text(&self, key: &str, text: &str, ttl: Duration) -> Result<(), BackendError> {
        self.connection()?.pset_ex::<_, _, ()>(key, text, ttl_millis(ttl)).map_err(unavailable)
    }

    fn get_text(&self, key: &str) -> Result<Option<String>, BackendError> {
        self.connection()?.get(key).map_err(unavailable)
    }

    fn get(&self, key: &str) -> Result<Option<Value>, BackendError> {
        let bytes: Option<Vec<u8>> = self.connection()?.get(key).map_err(unavailable)?;
        bytes
            .map(|b| {
                bincode::serde::decode_from_slice(&b, bincode::config::standard())
                    .map(|(v, _)| v)
                    .map_err(|e| BackendError::new(BackendErrorKind::Corrupt, "redis", format!("{key}: {e}")))
            })
            .transpose()
    }
}
