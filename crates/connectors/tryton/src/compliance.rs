//! The compliance harness subject (being written).
