//! Certificates shared by every node (shared/cluster.md §1, §7.8): `pg:certs` holds each
//! certificate as the JSON the embedded store keeps on disk (secrets included: Redis must be
//! protected by a password/ACL, and by TLS off loopback), `pg:certs:next` hands out ids, and
//! `pg:certs:log` is the stream of changes every node tails to update its certificate book.
//! An edit on any node reaches the others within one tail period; the senders read the book
//! before each request, exactly as for a local edit.

use super::{eval, keys, scripts, Cluster, ClusterError};
use crate::domain::{Certificate, CertificateId};
use redis::streams::{StreamId, StreamReadReply};
use std::collections::HashMap;

/// Entries kept in the change log (`MAXLEN ~`): a node further behind reloads everything.
const LOG_LEN: u64 = 10_000;

/// One change read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertChange {
    /// Created or edited: read it again from `pg:certs`.
    Put(CertificateId),
    Delete(CertificateId),
    /// Its owner published a change of health: read it from `pg:{c:<id>}:meta`.
    Health(CertificateId),
}

/// A version of a certificate, as written to `pg:certs` (the first 16 hex characters of the
/// SHA-256 of its JSON; every node encodes the same certificate to the same JSON).
pub fn fingerprint(cert: &Certificate) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(cert).unwrap_or_default();
    Sha256::digest(&json)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text(e: &StreamId, name: &str) -> Option<String> {
    e.map
        .get(name)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
}

fn decode(id: &str, json: &[u8]) -> Option<Certificate> {
    match serde_json::from_slice::<Certificate>(json) {
        Ok(c) => Some(c),
        Err(e) => {
            // Never the JSON itself in the log: it carries the secrets.
            tracing::error!(certificate = id, error = %e, "unreadable certificate in Redis skipped");
            None
        }
    }
}

impl Cluster {
    /// A new certificate id, unique across the nodes; ids start at 1001 (as in embedded mode).
    pub async fn next_certificate_id(&self) -> Result<CertificateId, ClusterError> {
        let mut c = eval(scripts::MSG_ID_BLOCK, &[keys::CERTS_NEXT]);
        c.arg(crate::gateway::FIRST_CERTIFICATE_ID - 1).arg(1);
        self.durable(c).await
    }

    /// Writes a created or edited certificate and logs the change, both acknowledged.
    pub async fn put_certificate(&self, cert: &Certificate) -> Result<(), ClusterError> {
        let json = serde_json::to_vec(cert)
            .map_err(|e| ClusterError::Unavailable(format!("certificate not encodable: {e}")))?;
        let _: i64 = self
            .durable(
                redis::cmd("HSET")
                    .arg(keys::CERTS)
                    .arg(cert.id)
                    .arg(json)
                    .clone(),
            )
            .await?;
        // An edit clears the broken mark on every node (as `CertEntry::replace` does on each),
        // so a fixed secret is tried again: the owner marks it again if it is still wrong. The
        // new version's fingerprint goes with it: a refusal of the old one that the owner
        // publishes after this is not written (`PUBLISH_HEALTH`).
        let mut c = eval(scripts::CERT_EDITED, &[&keys::cert_meta(cert.id)]);
        c.arg(fingerprint(cert));
        let _: i64 = self.durable(c).await?;
        self.log_certificate(cert.id, "put").await
    }

    /// Removes a certificate, logs it, and drops its queue, its bound and its owner lease
    /// (whatever was still queued fails with the certificate, as in embedded mode).
    pub async fn delete_certificate(&self, id: CertificateId) -> Result<(), ClusterError> {
        let _: i64 = self
            .durable(redis::cmd("HDEL").arg(keys::CERTS).arg(id).clone())
            .await?;
        self.log_certificate(id, "delete").await?;
        for k in [
            keys::cert_queue(id),
            keys::cert_meta(id),
            keys::cert_owner(id),
        ] {
            let _: i64 = self.run(redis::cmd("DEL").arg(k)).await?;
        }
        Ok(())
    }

    pub(crate) async fn log_certificate(
        &self,
        id: CertificateId,
        op: &str,
    ) -> Result<(), ClusterError> {
        let _: String = self
            .durable(
                redis::cmd("XADD")
                    .arg(keys::CERTS_LOG)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(LOG_LEN)
                    .arg("*")
                    .arg("id")
                    .arg(id)
                    .arg("op")
                    .arg(op)
                    .clone(),
            )
            .await?;
        Ok(())
    }

    /// Every certificate in Redis, and the log position they are current at (tail from there).
    pub async fn load_certificates(
        &self,
    ) -> Result<(HashMap<CertificateId, Certificate>, String), ClusterError> {
        // The position first: a change made while loading is then read again by the tail.
        let last: redis::streams::StreamRangeReply = self
            .run(
                redis::cmd("XREVRANGE")
                    .arg(keys::CERTS_LOG)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        let from = last
            .ids
            .first()
            .map_or_else(|| "0-0".to_string(), |e| e.id.clone());
        let all: HashMap<String, Vec<u8>> =
            self.run(redis::cmd("HGETALL").arg(keys::CERTS)).await?;
        let certs = all
            .iter()
            .filter_map(|(id, json)| decode(id, json))
            .map(|c| (c.id, c))
            .collect();
        Ok((certs, from))
    }

    /// One certificate as Redis has it now (None: deleted).
    pub async fn certificate(
        &self,
        id: CertificateId,
    ) -> Result<Option<Certificate>, ClusterError> {
        let json: Option<Vec<u8>> = self
            .run(redis::cmd("HGET").arg(keys::CERTS).arg(id))
            .await?;
        Ok(json.and_then(|j| decode(&id.to_string(), &j)))
    }

    /// Changes logged after `after`, and the new position. `Err` when the log was trimmed past
    /// `after` cannot be told apart here; a caller that falls behind reloads (`load_certificates`).
    pub async fn certificate_changes(
        &self,
        after: &str,
    ) -> Result<(Vec<CertChange>, String), ClusterError> {
        let r: Option<StreamReadReply> = self
            .run(
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(256)
                    .arg("STREAMS")
                    .arg(keys::CERTS_LOG)
                    .arg(after),
            )
            .await?;
        let ids: Vec<StreamId> = r
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        let next = ids
            .last()
            .map_or_else(|| after.to_string(), |e| e.id.clone());
        let changes = ids
            .iter()
            .filter_map(|e| {
                let id: CertificateId = text(e, "id")?.parse().ok()?;
                match text(e, "op")?.as_str() {
                    "put" => Some(CertChange::Put(id)),
                    "delete" => Some(CertChange::Delete(id)),
                    "health" => Some(CertChange::Health(id)),
                    _ => None,
                }
            })
            .collect();
        Ok((changes, next))
    }

    /// Certificates this node had on disk before it joined (a switch from embedded mode) and
    /// that Redis lacks: written there, without replacing anything Redis has under the same id,
    /// and the id counter moved past them. Returns the ids written.
    pub async fn adopt_certificates(
        &self,
        local: &[Certificate],
    ) -> Result<Vec<CertificateId>, ClusterError> {
        let mut written = Vec::new();
        for cert in local {
            let json = serde_json::to_vec(cert).map_err(|e| {
                ClusterError::Unavailable(format!("certificate not encodable: {e}"))
            })?;
            let added: i64 = self
                .durable(
                    redis::cmd("HSETNX")
                        .arg(keys::CERTS)
                        .arg(cert.id)
                        .arg(json)
                        .clone(),
                )
                .await?;
            if added == 1 {
                let mut c = eval(scripts::MSG_ID_BLOCK, &[keys::CERTS_NEXT]);
                c.arg(cert.id).arg(0);
                let _: u64 = self.durable(c).await?;
                self.log_certificate(cert.id, "put").await?;
                written.push(cert.id);
            }
        }
        Ok(written)
    }
}
