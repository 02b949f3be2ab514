//! The chain task: drives consensus, builds and checks blocks, executes decided blocks and
//! commits them. Being built; see issue 4.
