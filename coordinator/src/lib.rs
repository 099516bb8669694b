//! hallmark-coordinator
