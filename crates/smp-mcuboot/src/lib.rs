//! The MCUboot image format: parse and verify images, build test images.
#![forbid(unsafe_code)]
