import Foundation
import Logging

/// Each user's requests are bounded in rate: a token bucket per uid (`burst` at once, then `rate`
/// a second), so that one member's flood neither fills the disk nor delays another's approve.
/// Root and the daemon's own user are not limited.
struct RequestLimiter {
    static let rate = 20.0
    static let burst = 200.0
    private var buckets: [String: (tokens: Double, at: Date)] = [:]

    /// nil when the request may go on; otherwise how long until it could.
    /// `who`: `uid 1001` (a caller the kernel named), `api alice` (an API token's).
    mutating func admit(_ who: String, exempt: Bool, now: Date = Date()) -> String? {
        if exempt { return nil }
        var bucket = buckets[who] ?? (Self.burst, now)
        bucket.tokens = min(Self.burst, bucket.tokens + now.timeIntervalSince(bucket.at) * Self.rate)
        bucket.at = now
        defer {
            buckets[who] = bucket
            if buckets.count > 10_000 { buckets = buckets.filter { $0.value.tokens < Self.burst } }
        }
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            return nil
        }
        return "\(Int(((1 - bucket.tokens) / Self.rate * 1000).rounded(.up))) ms"
    }
}

/// Refusals are logged, but one user's flood does not flood the log: at most `perMinute` lines per
/// user a minute, then one line saying how many more there were.
struct RefusalLog {
    static let perMinute = 10
    private var windows: [String: (start: Date, logged: Int, suppressed: Int)] = [:]

    mutating func note(_ message: String, who: String, logger: Logger, now: Date = Date()) {
        var window = windows[who] ?? (now, 0, 0)
        if now.timeIntervalSince(window.start) >= 60 {
            if window.suppressed > 0 {
                logger.warning("\(window.suppressed) more refused requests from \(who) in the minute before, not logged one by one")
            }
            window = (now, 0, 0)
        }
        if window.logged < Self.perMinute {
            window.logged += 1
            logger.warning("\(message)", metadata: ["caller": "\(who)"])
        } else {
            if window.suppressed == 0 {
                logger.warning("further refusals of \(who)'s requests this minute are counted, not logged one by one")
            }
            window.suppressed += 1
        }
        windows[who] = window
        if windows.count > 10_000 { windows = windows.filter { now.timeIntervalSince($0.value.start) < 60 } }
    }
}
