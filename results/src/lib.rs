//! hallmark-results
