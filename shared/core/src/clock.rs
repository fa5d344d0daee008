//! Virtual time: a [`Clock`] that moves only when told to. The simulator runs on it, and so
//! does every test that needs the time to stand still or jump.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::pod::Millis;
use crate::ports::Clock;

/// A clock that stands still until advanced; share it with `Arc`.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now: AtomicI64,
}

impl VirtualClock {
    pub fn new(start: Millis) -> Self {
        VirtualClock {
            now: AtomicI64::new(start),
        }
    }

    /// A clock at `start`, ready to hand to adapters that take an `Arc<dyn Clock>` while the
    /// caller keeps a handle to move it.
    pub fn shared(start: Millis) -> Arc<Self> {
        Arc::new(VirtualClock::new(start))
    }

    /// Moves the clock forward by `by` (a negative step is ignored: time never goes back,
    /// which the simulation relies on).
    pub fn advance(&self, by: Millis) {
        self.now.fetch_add(by.max(0), Ordering::SeqCst);
    }

    /// Moves the clock to `to`; time never goes backwards, so an earlier `to` is ignored.
    pub fn advance_to(&self, to: Millis) {
        self.now.fetch_max(to, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_forward_only() {
        let clock = VirtualClock::shared(1_000);
        clock.advance(500);
        assert_eq!(clock.now(), 1_500);
        clock.advance(-200);
        clock.advance_to(1_200);
        assert_eq!(clock.now(), 1_500);
        clock.advance_to(2_000);
        assert_eq!(clock.now(), 2_000);
    }
}
