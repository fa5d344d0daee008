//! Allocatable math.
