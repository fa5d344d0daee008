//! The claim store in memory, with DynamoDB's rules: versioned conditional writes, forward-only
//! state transitions, a lease with growing fencing tokens, and an audit log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use nodewright_core::nodeclaim::{AuditRecord, ClaimState, NodeClaim};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{
    ClaimStore, ErrorKind, Lease, OfferingKey, PortError, PortResult, UnavailableMark,
};

use crate::calls::{Call, Recorder, StoreOp};

#[derive(Debug, Default)]
struct LeaseRow {
    /// `None` once released.
    holder: Option<String>,
    /// Only ever grows, so no token is handed out twice.
    token: u64,
    expires_at: Millis,
}

#[derive(Debug, Default)]
struct StoreState {
    claims: BTreeMap<String, NodeClaim>,
    lease: LeaseRow,
    audit: Vec<AuditRecord>,
    unavailable: BTreeMap<OfferingKey, Millis>,
    recorder: Recorder<StoreOp>,
}

/// The NodeClaim store, as the DynamoDB adapter behaves: `create` conflicts with an existing
/// id, `update` is conditional on the version read (`Conflict`) and on a legal transition
/// ([`ClaimState::can_become`], else `Invalid`), `NotFound` for a missing claim; the lease is
/// taken when free, expired or already held by the same holder, each time with a larger token.
/// Terminated claims are kept (the real rows expire by TTL) so that tests can read them.
/// A [fenced](ClaimStore::fenced) view shares the state and checks the lease token on claim
/// writes, as the DynamoDB adapter's transaction does.
#[derive(Debug, Default)]
pub struct SimClaimStore {
    state: Arc<Mutex<StoreState>>,
    fence: Option<u64>,
}

impl SimClaimStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, StoreState> {
        // Every mutation completes under the lock, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every claim ever written, terminated ones included, by id.
    pub fn claims(&self) -> Vec<NodeClaim> {
        self.state().claims.values().cloned().collect()
    }

    pub fn audit_log(&self) -> Vec<AuditRecord> {
        self.state().audit.clone()
    }

    /// The next call of `op` fails with `error`.
    pub fn fail_next(&self, op: StoreOp, error: PortError) {
        self.state().recorder.fail_next(op, error);
    }

    pub fn calls(&self) -> Vec<Call<StoreOp>> {
        self.state().recorder.calls().to_vec()
    }

    /// `Conflict` when this view is fenced by a lease that has passed on.
    fn check_fence(&self, state: &StoreState, id: &str) -> PortResult<()> {
        match self.fence {
            Some(token) if state.lease.token != token => Err(PortError::new(
                ErrorKind::Conflict,
                format!("claim {id}: the lease with token {token} has passed on"),
            )),
            _ => Ok(()),
        }
    }

    fn create_now(&self, claim: &NodeClaim) -> PortResult<NodeClaim> {
        let mut state = self.state();
        state.recorder.call(StoreOp::Create, &claim.id)?;
        self.check_fence(&state, &claim.id)?;
        if state.claims.contains_key(&claim.id) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("claim {} already exists", claim.id),
            ));
        }
        let mut stored = claim.clone();
        stored.version = 1;
        state.claims.insert(claim.id.clone(), stored.clone());
        Ok(stored)
    }

    fn update_now(&self, claim: &NodeClaim) -> PortResult<NodeClaim> {
        let mut state = self.state();
        state.recorder.call(StoreOp::Update, &claim.id)?;
        self.check_fence(&state, &claim.id)?;
        let Some(current) = state.claims.get(&claim.id) else {
            return Err(PortError::new(
                ErrorKind::NotFound,
                format!("claim {} does not exist", claim.id),
            ));
        };
        if current.version != claim.version {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!(
                    "claim {} is at version {}, not {}",
                    claim.id, current.version, claim.version
                ),
            ));
        }
        if !current.state.can_become(claim.state) {
            return Err(PortError::new(
                ErrorKind::Invalid,
                format!(
                    "claim {} cannot go from {} to {}",
                    claim.id, current.state, claim.state
                ),
            ));
        }
        let mut stored = claim.clone();
        stored.version = claim.version.checked_add(1).ok_or_else(|| {
            PortError::new(
                ErrorKind::Invalid,
                format!("claim {} version overflows", claim.id),
            )
        })?;
        state.claims.insert(claim.id.clone(), stored.clone());
        Ok(stored)
    }

    fn get_now(&self, id: &str) -> PortResult<Option<NodeClaim>> {
        let mut state = self.state();
        state.recorder.call(StoreOp::Get, id)?;
        Ok(state.claims.get(id).cloned())
    }

    fn list_live_now(&self) -> PortResult<Vec<NodeClaim>> {
        let mut state = self.state();
        state.recorder.call(StoreOp::ListLive, "")?;
        Ok(state
            .claims
            .values()
            .filter(|c| c.state != ClaimState::Terminated)
            .cloned()
            .collect())
    }

    fn find_by_instance_now(&self, instance_id: &str) -> PortResult<Option<NodeClaim>> {
        let mut state = self.state();
        state.recorder.call(StoreOp::FindByInstance, instance_id)?;
        let mut found: Vec<&NodeClaim> = state
            .claims
            .values()
            .filter(|c| c.instance_id() == Some(instance_id))
            .collect();
        // Should an id ever be recorded twice, the live claim is the one that matters.
        found.sort_by_key(|c| !c.state.is_live());
        Ok(found.first().map(|c| (*c).clone()))
    }

    fn acquire_lease_now(&self, holder: &str, now: Millis, ttl_ms: Millis) -> PortResult<Lease> {
        let mut state = self.state();
        state.recorder.call(StoreOp::AcquireLease, holder)?;
        if holder.is_empty() || ttl_ms <= 0 {
            return Err(PortError::new(
                ErrorKind::Invalid,
                format!("bad lease request: holder {holder:?}, ttl {ttl_ms} ms"),
            ));
        }
        let lease = &mut state.lease;
        if let Some(other) = &lease.holder
            && other != holder
            && lease.expires_at >= now
        {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("the lease is held by {other} until {}", lease.expires_at),
            ));
        }
        lease.holder = Some(holder.to_string());
        lease.token += 1;
        lease.expires_at = now + ttl_ms;
        Ok(Lease {
            holder: holder.to_string(),
            token: lease.token,
            expires_at: lease.expires_at,
        })
    }

    fn release_lease_now(&self, released: &Lease) -> PortResult<()> {
        let mut state = self.state();
        state.recorder.call(StoreOp::ReleaseLease, &released.holder)?;
        let lease = &mut state.lease;
        // A lease that passed to someone else is theirs now; releasing it is not an error.
        if lease.holder.as_deref() == Some(released.holder.as_str()) && lease.token == released.token {
            lease.holder = None;
            lease.expires_at = 0;
        }
        Ok(())
    }

    fn mark_unavailable_now(&self, key: &OfferingKey, until: Millis) -> PortResult<()> {
        let mut state = self.state();
        state
            .recorder
            .call(StoreOp::MarkUnavailable, &key.instance_type)?;
        let entry = state.unavailable.entry(key.clone()).or_insert(until);
        *entry = (*entry).max(until);
        Ok(())
    }

    fn list_unavailable_now(&self, now: Millis) -> PortResult<Vec<UnavailableMark>> {
        let mut state = self.state();
        state.recorder.call(StoreOp::ListUnavailable, "")?;
        Ok(state
            .unavailable
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(k, until)| UnavailableMark {
                offering: k.clone(),
                until: *until,
            })
            .collect())
    }

    fn audit_now(&self, record: &AuditRecord) -> PortResult<()> {
        let mut state = self.state();
        state.recorder.call(StoreOp::Audit, &record.claim_id)?;
        state.audit.push(record.clone());
        Ok(())
    }
}

impl ClaimStore for SimClaimStore {
    fn fenced(&self, lease: &Lease) -> Self {
        SimClaimStore {
            state: self.state.clone(),
            fence: Some(lease.token),
        }
    }

    fn create(&self, claim: &NodeClaim) -> impl Future<Output = PortResult<NodeClaim>> + Send {
        std::future::ready(self.create_now(claim))
    }

    fn update(&self, claim: &NodeClaim) -> impl Future<Output = PortResult<NodeClaim>> + Send {
        std::future::ready(self.update_now(claim))
    }

    fn get(&self, id: &str) -> impl Future<Output = PortResult<Option<NodeClaim>>> + Send {
        std::future::ready(self.get_now(id))
    }

    fn list_live(&self) -> impl Future<Output = PortResult<Vec<NodeClaim>>> + Send {
        std::future::ready(self.list_live_now())
    }

    fn find_by_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = PortResult<Option<NodeClaim>>> + Send {
        std::future::ready(self.find_by_instance_now(instance_id))
    }

    fn acquire_lease(
        &self,
        holder: &str,
        now: Millis,
        ttl_ms: Millis,
    ) -> impl Future<Output = PortResult<Lease>> + Send {
        std::future::ready(self.acquire_lease_now(holder, now, ttl_ms))
    }

    fn release_lease(&self, lease: &Lease) -> impl Future<Output = PortResult<()>> + Send {
        std::future::ready(self.release_lease_now(lease))
    }

    fn audit(&self, record: &AuditRecord) -> impl Future<Output = PortResult<()>> + Send {
        std::future::ready(self.audit_now(record))
    }

    fn mark_unavailable(
        &self,
        key: &OfferingKey,
        until: Millis,
    ) -> impl Future<Output = PortResult<()>> + Send {
        std::future::ready(self.mark_unavailable_now(key, until))
    }

    fn list_unavailable(&self, now: Millis) -> impl Future<Output = PortResult<Vec<UnavailableMark>>> + Send {
        std::future::ready(self.list_unavailable_now(now))
    }
}
