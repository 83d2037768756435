//! smp-sim
