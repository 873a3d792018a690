//! Wall-clock time in Unix seconds. Callers take it once and pass it down,
//! so the flow and the store can be tested with any time they like.

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
