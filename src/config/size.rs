//! Sizes in config values: a number of bytes, optionally with a binary unit.

/// The smallest and largest upload chunk `native.chunk-size` accepts.
const CHUNK_SIZE_BOUNDS: (u64, u64) = (64 * 1024, 1024 * 1024 * 1024);

/// Parses `native.chunk-size`: a number of bytes, optionally with a binary unit (`KiB`,
/// `MiB`, `GiB`; `K`, `M`, `G` mean the same), between 64 KiB and 1 GiB.
pub(super) fn parse_chunk_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return Err(format!("'{text}' is not a size")),
    };
    let size = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("'{text}' is not a size"))?;
    let (min, max) = CHUNK_SIZE_BOUNDS;
    if !(min..=max).contains(&size) {
        return Err(format!("'{text}' must be between 64KiB and 1GiB"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size("8MiB"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_chunk_size(" 512 KiB "), Ok(512 * 1024));
        assert_eq!(parse_chunk_size("1048576"), Ok(1024 * 1024));
        assert_eq!(parse_chunk_size("1g"), Ok(1024 * 1024 * 1024));
        for bad in [
            "",
            "MiB",
            "8 parsecs",
            "-1",
            "1KiB",
            "2GiB",
            "99999999999999999999GiB",
        ] {
            assert!(parse_chunk_size(bad).is_err(), "{bad}");
        }
    }
}
