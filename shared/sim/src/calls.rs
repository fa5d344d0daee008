//! What the fakes record, and the errors a test can make them return next.

use nodewright_core::ports::PortError;

/// One call to a fake: which operation, and on what (a claim id, node name, `ns/pod`; empty
/// for listings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<Op> {
    pub op: Op,
    pub target: String,
}

/// The operations of [`crate::SimCloud`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudOp {
    Launch,
    Terminate,
    ListInstances,
    Catalog,
    ListInstanceProfiles,
    DeleteInstanceProfile,
}

/// The operations of [`crate::SimCluster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterOp {
    ListPendingPods,
    ListBoundPods,
    ListNodes,
    ListDaemonsets,
    ListPdbs,
    ListVolumes,
    RecordEvents,
    UpdateStatuses,
    ListNodepools,
    ListNodeclasses,
    Cordon,
    Evict,
    DeleteNode,
    PatchNode,
}

/// The operations of [`crate::SimClaimStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Create,
    Update,
    Get,
    ListLive,
    FindByInstance,
    AcquireLease,
    ReleaseLease,
    Audit,
    MarkUnavailable,
    ListUnavailable,
}

/// The call log and the injected errors of one fake.
#[derive(Debug)]
pub(crate) struct Recorder<Op> {
    calls: Vec<Call<Op>>,
    /// Returned, in order, by the next calls of their operation.
    faults: Vec<(Op, PortError)>,
}

impl<Op> Default for Recorder<Op> {
    fn default() -> Self {
        Recorder {
            calls: Vec::new(),
            faults: Vec::new(),
        }
    }
}

impl<Op: Copy + PartialEq> Recorder<Op> {
    /// Records the call and hands back the error injected for it, if any: the fake then
    /// returns that error without touching its state.
    pub(crate) fn call(&mut self, op: Op, target: &str) -> Result<(), PortError> {
        self.calls.push(Call {
            op,
            target: target.to_string(),
        });
        match self.faults.iter().position(|(o, _)| *o == op) {
            Some(i) => Err(self.faults.remove(i).1),
            None => Ok(()),
        }
    }

    pub(crate) fn fail_next(&mut self, op: Op, error: PortError) {
        self.faults.push((op, error));
    }

    pub(crate) fn calls(&self) -> &[Call<Op>] {
        &self.calls
    }
}
