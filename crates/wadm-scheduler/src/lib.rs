//! The scheduling core of wadm: from deployed applications and the observed lattice to a plan of
//! control commands and a status per application. Pure and deterministic.
