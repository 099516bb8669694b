//! hallmark-workloads
