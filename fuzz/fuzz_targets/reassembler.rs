//! libFuzzer entry point of `smp_fuzz::targets::reassembler`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smp_fuzz::targets::reassembler(data));
