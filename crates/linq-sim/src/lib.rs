//! linq-sim.
