//! Load generators and device backends.
//!
//! Today this crate holds the simulated backend's inventory: the devices a `sim` probe reports in its
//! Hello. The physics of the simulated hall, the pattern controller and the real backends (cpu, cuda)
//! grow here.

pub mod sim;
