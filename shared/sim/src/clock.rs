//! Virtual time: it moves only when the simulation advances it.

use std::sync::atomic::{AtomicI64, Ordering};

use nodewright_core::pod::Millis;
use nodewright_core::ports::Clock;

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
