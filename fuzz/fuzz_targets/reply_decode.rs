//! libFuzzer entry point of `smp_fuzz::targets::reply_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smp_fuzz::targets::reply_decode(data));
