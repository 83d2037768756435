//! The image version (`struct image_version`).

use core::fmt;
use core::str::FromStr;

use crate::ImageError;

/// The version in an image header.
///
/// Ordering compares major, minor, revision, then build. MCUboot compares the first
/// three always and the build number only when built with
/// `MCUBOOT_VERSION_CMP_USE_BUILD_NUMBER`.
///
/// Displays as Zephyr's `img_mgmt` reports versions: `major.minor.revision`, with
/// `.build` appended when the build number is not zero. Parses that form, `imgtool`'s
/// `major.minor.revision+build`, and the shorter `major.minor` and `major`.
///
/// ```
/// use smp_mcuboot::ImageVersion;
///
/// let v: ImageVersion = "1.2.3+4".parse()?;
/// assert_eq!(v, ImageVersion::new(1, 2, 3, 4));
/// assert_eq!(v.to_string(), "1.2.3.4");
/// assert_eq!(ImageVersion::new(1, 2, 3, 0).to_string(), "1.2.3");
/// assert!("1.2.3".parse::<ImageVersion>()? < v);
/// # Ok::<(), smp_mcuboot::ImageError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ImageVersion {
    /// Major version (`iv_major`).
    pub major: u8,
    /// Minor version (`iv_minor`).
    pub minor: u8,
    /// Revision (`iv_revision`).
    pub revision: u16,
    /// Build number (`iv_build_num`).
    pub build: u32,
}

impl ImageVersion {
    /// A version from its four parts.
    pub const fn new(major: u8, minor: u8, revision: u16, build: u32) -> Self {
        Self {
            major,
            minor,
            revision,
            build,
        }
    }
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)?;
        if self.build != 0 {
            write!(f, ".{}", self.build)?;
        }
        Ok(())
    }
}

impl FromStr for ImageVersion {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ImageError::BadVersion(s.to_owned());
        let (dotted, plus_build) = match s.split_once('+') {
            Some((dotted, build)) => (dotted, Some(build)),
            None => (s, None),
        };
        let parts: Vec<&str> = dotted.split('.').collect();
        // imgtool allows "+build" only after all three other parts.
        let [major, minor, revision, build] = match (&parts[..], plus_build) {
            (&[major], None) => [major, "0", "0", "0"],
            (&[major, minor], None) => [major, minor, "0", "0"],
            (&[major, minor, revision], None) => [major, minor, revision, "0"],
            (&[major, minor, revision], Some(build)) | (&[major, minor, revision, build], None) => {
                [major, minor, revision, build]
            }
            _ => return Err(bad()),
        };
        Ok(Self {
            major: number(major).ok_or_else(bad)?,
            minor: number(minor).ok_or_else(bad)?,
            revision: number(revision).ok_or_else(bad)?,
            build: number(build).ok_or_else(bad)?,
        })
    }
}

/// A decimal number of digits only (no sign, no spaces) that fits `T`.
fn number<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ImageVersion, ImageError> {
        s.parse()
    }

    #[test]
    fn parses_imgtool_and_zephyr_forms() {
        assert_eq!(parse("1.2.3+4"), Ok(ImageVersion::new(1, 2, 3, 4)));
        assert_eq!(parse("1.2.3.4"), Ok(ImageVersion::new(1, 2, 3, 4)));
        assert_eq!(parse("1.2.3"), Ok(ImageVersion::new(1, 2, 3, 0)));
        assert_eq!(parse("1.2"), Ok(ImageVersion::new(1, 2, 0, 0)));
        assert_eq!(parse("1"), Ok(ImageVersion::new(1, 0, 0, 0)));
        assert_eq!(parse("0.0.0+0"), Ok(ImageVersion::default()));
        assert_eq!(
            parse("255.255.65535+4294967295"),
            Ok(ImageVersion::new(255, 255, 65535, u32::MAX))
        );
        assert_eq!(parse("01.002.3"), Ok(ImageVersion::new(1, 2, 3, 0)));
    }

    #[test]
    fn rejects_bad_text_and_overflow() {
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "1..2",
            "a",
            "1.2.3-rc1",
            "v1.2.3",
            " 1.2.3",
            "1.2.3 ",
            "+1.2.3",
            "1.+2.3",
            "-1",
            "1.2+4",
            "1+4",
            "1.2.3+",
            "1.2.3+4+5",
            "1.2.3.4+5",
            "1.2.3.4.5",
            "256.0.0",
            "0.256.0",
            "0.0.65536",
            "0.0.0+4294967296",
            "0.0.0.4294967296",
            "99999999999999999999999",
        ] {
            assert_eq!(
                parse(bad),
                Err(ImageError::BadVersion(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn displays_build_only_when_set() {
        assert_eq!(ImageVersion::new(1, 2, 3, 4).to_string(), "1.2.3.4");
        assert_eq!(ImageVersion::new(1, 2, 3, 0).to_string(), "1.2.3");
        assert_eq!(ImageVersion::default().to_string(), "0.0.0");
        assert_eq!(
            ImageVersion::new(255, 255, 65535, u32::MAX).to_string(),
            "255.255.65535.4294967295"
        );
    }

    #[test]
    fn orders_by_major_minor_revision_build() {
        let sorted = [
            "0.0.0",
            "0.0.0+1",
            "0.0.1",
            "0.0.65535+9",
            "0.1.0",
            "0.255.0",
            "1.0.0",
            "1.2.3",
            "1.2.3+4",
            "1.2.3+10",
            "1.2.4",
            "2.0.0",
        ]
        .map(|s| parse(s).unwrap());
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn display_parses_back(major: u8, minor: u8, revision: u16, build: u32) {
                let version = ImageVersion::new(major, minor, revision, build);
                prop_assert_eq!(version.to_string().parse(), Ok(version));
                let imgtool = format!("{major}.{minor}.{revision}+{build}");
                prop_assert_eq!(imgtool.parse(), Ok(version));
            }

            #[test]
            fn parse_never_panics(s in "[0-9.+a -]{0,24}") {
                let _ = s.parse::<ImageVersion>();
            }
        }
    }
}
