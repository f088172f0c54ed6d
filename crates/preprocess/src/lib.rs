//! ipukit preprocessing (work in progress).
