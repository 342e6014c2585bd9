//! The use-cases: every action lives once here.
