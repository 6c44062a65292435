import Foundation
import Testing

@testable import ShipyardWeb

/// Password guessing is limited by `LoginThrottle`: what an attacker can and cannot do to it.
@Suite struct LoginThrottleTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// Side by side, one attempt per user and address is checked; after failures each waits
    /// (none after the first, then 0.5 s doubling to 8 s), and attempts meanwhile are refused
    /// with the time left, holding nothing.
    @Test func concurrentAttemptsAreRefusedAndFailuresMakeThemWait() {
        let throttle = LoginThrottle()
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.1", now: now) == .check)
        // Another while the first is being checked: refused, from any address (the user is
        // busy), and from the same address for any user.
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.2", now: now) == .wait(0.5))
        #expect(throttle.admit(user: "bob", known: true, address: "10.0.0.1", now: now) == .wait(0.5))
        throttle.done(user: "alice", known: true, address: "10.0.0.1", succeeded: false, now: now)
        // A first failure: typed again at once.
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.1", now: now) == .check)
        throttle.done(user: "alice", known: true, address: "10.0.0.1", succeeded: false, now: now)
        // A second: 0.5 s, from any address.
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.3", now: now.addingTimeInterval(0.2)) != .check)
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.3", now: now.addingTimeInterval(0.5)) == .check)
        throttle.done(user: "alice", known: true, address: "10.0.0.3", succeeded: false, now: now.addingTimeInterval(0.5))
        guard case .wait(let left) = throttle.admit(user: "alice", known: true, address: "10.0.0.4", now: now.addingTimeInterval(1)) else {
            Issue.record("a third failure made no wait")
            return
        }
        #expect(abs(left - 0.5) < 0.001)
        // A success forgets the user's failures.
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.4", now: now.addingTimeInterval(2)) == .check)
        throttle.done(user: "alice", known: true, address: "10.0.0.4", succeeded: true, now: now.addingTimeInterval(2))
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.5", now: now.addingTimeInterval(2)) == .check)
    }

    /// A user named like an address does not slow that address.
    @Test func usersAndAddressesAreApart() {
        let throttle = LoginThrottle()
        _ = throttle.admit(user: "10.0.0.9", known: true, address: "10.0.0.1", now: now)
        throttle.done(user: "10.0.0.9", known: true, address: "10.0.0.1", succeeded: false, now: now)
        #expect(throttle.admit(user: "carol", known: true, address: "10.0.0.9", now: now) == .check)
    }

    /// A flood of failures from many addresses cannot flush a user or address being throttled:
    /// at capacity the least recently seen entry that is not waiting goes.
    @Test func aFloodOfAddressesCannotFlushTheThrottled() {
        let throttle = LoginThrottle(capacity: 100)
        for _ in 0..<5 {
            _ = throttle.admit(user: "alice", known: true, address: "192.0.2.1", now: now)
            throttle.done(user: "alice", known: true, address: "192.0.2.1", succeeded: false, now: now)
        }
        // 26,000 failures, each with a long made-up name of its own and an address of its own.
        for i in 0..<26_000 {
            let address = "10.\(i / 65536).\(i / 256 % 256).\(i % 256)"
            let name = String(repeating: "n", count: 100) + String(i)
            let at = now.addingTimeInterval(Double(i) * 0.0001)
            if case .check = throttle.admit(user: name, known: true, address: address, now: at) {
                throttle.done(user: name, known: true, address: address, succeeded: false, now: at)
            }
        }
        #expect(throttle.count <= 100)
        // alice still waits (five failures: 4 s), from any address.
        guard case .wait(let left) = throttle.admit(user: "alice", known: true, address: "198.51.100.7", now: now.addingTimeInterval(3)) else {
            Issue.record("alice's wait was flushed out of the table")
            return
        }
        #expect(left > 0.9)
    }

    /// IPv6 addresses of one /64 are one address.
    @Test func anIPv6SlashSixtyFourIsOneAddress() {
        #expect(LoginThrottle.addressKey("2001:db8:1:2::1") == LoginThrottle.addressKey("2001:db8:1:2:ffff::9"))
        #expect(LoginThrottle.addressKey("2001:db8:1:2::1") != LoginThrottle.addressKey("2001:db8:1:3::1"))
        // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d: each is its own address.
        #expect(LoginThrottle.addressKey("::ffff:192.0.2.1") == LoginThrottle.addressKey("192.0.2.1"))
        #expect(LoginThrottle.addressKey("::ffff:192.0.2.1") != LoginThrottle.addressKey("::ffff:192.0.2.2"))
    }

    /// An unknown user's check costs what the file's hashes cost.
    @Test func theDecoyFollowsTheFilesCost() {
        #expect(PasswordFile.commonCost(["$2y$05$abc", "$2y$05$def", "$2b$12$ghi"]) == 5)
        #expect(PasswordFile.commonCost([]) == 12)
    }
}
