//! The wall clock, for the Lambda functions (the core takes time only through [`Clock`]).

use std::time::{SystemTime, UNIX_EPOCH};

use nodewright_core::pod::Millis;
use nodewright_core::ports::Clock;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
            .unwrap_or(0)
    }
}
