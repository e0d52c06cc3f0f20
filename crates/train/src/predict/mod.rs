//! A saved run put to use: the record reloaded and its predictions (`inference`: no autodiff, no
//! burn-train), and its accuracy and loss on both splits (`evaluation`).

pub mod evaluation;
pub mod inference;
