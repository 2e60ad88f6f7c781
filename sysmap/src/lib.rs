//! ZeroCloud job descriptions (work in progress).
