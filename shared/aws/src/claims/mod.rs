//! DynamoDB NodeClaim store, lease and audit log: [`DynamoClaimStore`] implements the core's
//! [`ClaimStore`].
//!
//! # Table
//!
//! One table per cluster stack. The SAM template creates it in production; [`create_table`]
//! makes the same table for tests and local development. The template must match:
//!
//! ```yaml
//! ClaimsTable:
//!   Type: AWS::DynamoDB::Table
//!   Properties:
//!     BillingMode: PAY_PER_REQUEST
//!     AttributeDefinitions:
//!       - { AttributeName: cluster, AttributeType: S }
//!       - { AttributeName: sk, AttributeType: S }
//!       - { AttributeName: instance_id, AttributeType: S }
//!     KeySchema:
//!       - { AttributeName: cluster, KeyType: HASH }
//!       - { AttributeName: sk, KeyType: RANGE }
//!     GlobalSecondaryIndexes:
//!       - IndexName: by-instance
//!         KeySchema: [{ AttributeName: instance_id, KeyType: HASH }]
//!         Projection: { ProjectionType: ALL }
//!     TimeToLiveSpecification: { AttributeName: expires_at, Enabled: true }
//! ```
//!
//! Rows, all in the partition `cluster = <cluster name>`:
//!
//! | `sk` | attributes |
//! |------|------------|
//! | `claim#<id>` | `version` (N), `state` (S), `claim` (S: the NodeClaim as JSON), `instance_id` (S, only once known: the GSI is sparse), `expires_at` (N, epoch seconds: set when the claim becomes `terminated`, [`TERMINATED_RETENTION_SECS`] later) |
//! | `lease` | `holder` (S, absent once released), `token` (N: the fencing token, only ever grows), `lease_expires_at` (N, epoch millis) |
//! | `unavailable#<type>#<zone>#<capacity type>` | `instance_type`, `zone`, `capacity_type` (S), `until` (N, epoch millis: a later mark wins), `expires_at` (N, an hour after `until`) |
//! | `audit#<at millis, 15 digits>#<claim id>#<action>` | `actor`, `action`, `claim_id`, `reason` (S), `delta_per_hour` (N), `at` (N, millis), `expires_at` (N, [`AUDIT_RETENTION_SECS`] later) |
//!
//! The lease row has no `expires_at`: TTL would delete it, and the token counter with it, and a
//! token must never be handed out twice. Acquiring is one conditional UpdateItem that succeeds
//! when the row is absent, expired or held by the same holder, and always adds one to `token`:
//! a renewal gets a new token too, so a holder fences with the lease it got last. Holder names
//! must be unique per round (the Lambda request id), or two rounds would share the lease.
//!
//! # Consistency
//!
//! Every write is conditional: a claim is created only where none is, updated only at the
//! version it was read at (a lost race is `Conflict`), and only along a legal transition
//! ([`ClaimState::can_become`], else `Invalid`). Table reads are strongly consistent; the
//! `by-instance` index is not, so [`ClaimStore::find_by_instance`] may miss a claim written a
//! moment ago. TTL deletion lags (by up to days; moto never deletes), so rows past `expires_at`
//! are treated as deleted by every read and write, measured by the injected [`Clock`].
//!
//! A store made [`DynamoClaimStore::with_fence`] writes claims in a transaction with a check
//! that the lease row still carries the holder's token, so a holder that lost its lease (a
//! paused Lambda that woke after its lease expired) cannot overwrite its successor's claims.

//!
//! # Files
//!
//! [`store`] implements the port's claim reads and writes, [`lease`] the lease, [`audit`] the
//! audit log, [`unavailable`] the offerings out of capacity; [`item`] encodes and decodes the
//! rows, [`query`] runs a Query over every page, [`table`] creates the table.

mod audit;
mod item;
mod lease;
mod query;
mod store;
mod table;
mod unavailable;

use std::fmt;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::BuildError;
use nodewright_core::ports::{Clock, ErrorKind, Lease, PortError};

use item::Item;

pub use table::create_table;

/// The partition key: the cluster name.
pub const PARTITION_KEY: &str = "cluster";
/// The sort key: `claim#<id>`, `lease` or `audit#…`.
pub const SORT_KEY: &str = "sk";
/// The sparse global secondary index on `instance_id`.
pub const INSTANCE_INDEX: &str = "by-instance";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// How long a terminated claim's row is kept: a day, for operators and late events.
pub const TERMINATED_RETENTION_SECS: i64 = 24 * 3600;
/// How long an audit row is kept.
pub const AUDIT_RETENTION_SECS: i64 = 90 * 24 * 3600;

/// The NodeClaim store for one cluster in one DynamoDB table.
#[derive(Clone)]
pub struct DynamoClaimStore {
    client: Client,
    table: String,
    cluster: String,
    clock: Arc<dyn Clock>,
    /// The fencing token every claim write is checked against, if any.
    fence: Option<u64>,
}

impl fmt::Debug for DynamoClaimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoClaimStore")
            .field("table", &self.table)
            .field("cluster", &self.cluster)
            .field("fence", &self.fence)
            .finish()
    }
}

impl DynamoClaimStore {
    /// A store for `cluster`'s rows in `table`. `clock` decides which rows have expired and
    /// when new ones expire.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        cluster: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        DynamoClaimStore {
            client,
            table: table.into(),
            cluster: cluster.into(),
            clock,
            fence: None,
        }
    }

    /// The same store, with every claim create and update made conditional on the lease row
    /// still carrying `lease.token`; a write after the lease passed on fails with `Conflict`.
    pub fn with_fence(&self, lease: &Lease) -> Self {
        DynamoClaimStore {
            fence: Some(lease.token),
            ..self.clone()
        }
    }

    fn key(&self, sk: &str) -> Item {
        item::key(&self.cluster, sk)
    }
}

fn build_error(e: BuildError) -> PortError {
    PortError::new(ErrorKind::Invalid, "malformed DynamoDB request").with_source(e)
}
