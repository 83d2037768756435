//! CRC-16/XMODEM, the checksum of console and COBS frames.

/// Generator polynomial (x^16 + x^12 + x^5 + 1), most significant bit first.
const POLY: u16 = 0x1021;
/// Register value before the first byte.
const INIT: u16 = 0x0000;

/// One table entry per byte value: the register after shifting that byte through.
const TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

/// The CRC-16/XMODEM of `data` (also called CRC-16/CCITT with initial value 0, Zephyr's
/// `crc16_itu_t(0, ...)`): polynomial 0x1021, initial value 0, no reflection, no final XOR.
///
/// Console and COBS frames carry it big-endian after the SMP frame, computed over the SMP
/// frame alone (not over the console length field).
///
/// ```
/// assert_eq!(smp_serial::crc16(b"123456789"), 0x31c3);
/// assert_eq!(smp_serial::crc16(b""), 0);
/// ```
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(INIT, |crc, &byte| {
        (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same CRC, one bit at a time, as the definition reads.
    fn bitwise(data: &[u8]) -> u16 {
        let mut crc = INIT;
        for &byte in data {
            crc ^= u16::from(byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ POLY
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn check_values() {
        // The catalogue's check value of CRC-16/XMODEM.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        // The echo request of PROTOCOL.md section 1.
        let echo = [
            0x0a, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
            0x00, // header: v2 WRITE, len 9, OS echo
            0xa1, 0x61, 0x64, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f, // {"d": "hello"}
        ];
        assert_eq!(crc16(&echo), 0xa27f);
        // A frame followed by its own CRC (big-endian) checks to zero, as Zephyr tests it.
        let mut with_crc = echo.to_vec();
        with_crc.extend(crc16(&echo).to_be_bytes());
        assert_eq!(crc16(&with_crc), 0);
    }

    #[test]
    fn table_matches_the_bitwise_definition() {
        let data: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in [0, 1, 2, 7, 64, data.len()] {
            assert_eq!(crc16(&data[..len]), bitwise(&data[..len]), "{len} bytes");
        }
    }
}
