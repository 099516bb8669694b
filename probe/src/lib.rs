//! hallmark-probe
