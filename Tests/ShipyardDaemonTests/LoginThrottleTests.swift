import Foundation
import Testing

@testable import ShipyardWeb

/// Password guessing is limited by `LoginThrottle`: what an attacker can and cannot do to it.
@Suite struct LoginThrottleTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// Side by side, one attempt per user and address is checked; in sequence, each waits for
    /// the wait the failures before it left (0.5 s doubling to 8 s).
    @Test func concurrentAttemptsAreRefusedAndSequentialOnesWait() {
        let throttle = LoginThrottle()
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.1", now: now) == .check(after: 0))
        // Another while the first is under way: refused, from any address (the user is busy),
        // and from the same address for any user.
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.2", now: now) == .wait(0.5))
        #expect(throttle.admit(user: "bob", known: true, address: "10.0.0.1", now: now) == .wait(0.5))
        throttle.done(user: "alice", known: true, address: "10.0.0.1", succeeded: false, now: now)
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.1", now: now) == .check(after: 0.5))
        throttle.done(user: "alice", known: true, address: "10.0.0.1", succeeded: false, now: now.addingTimeInterval(0.5))
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.3", now: now.addingTimeInterval(0.5)) == .check(after: 1))
        throttle.cancel(user: "alice", known: true, address: "10.0.0.3")
        // A success forgets the user's failures.
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.4", now: now.addingTimeInterval(2)) == .check(after: 0))
        throttle.done(user: "alice", known: true, address: "10.0.0.4", succeeded: true, now: now.addingTimeInterval(2))
        #expect(throttle.admit(user: "alice", known: true, address: "10.0.0.5", now: now.addingTimeInterval(2)) == .check(after: 0))
    }

    /// A user named like an address does not slow that address.
    @Test func usersAndAddressesAreApart() {
        let throttle = LoginThrottle()
        _ = throttle.admit(user: "10.0.0.9", known: true, address: "10.0.0.1", now: now)
        throttle.done(user: "10.0.0.9", known: true, address: "10.0.0.1", succeeded: false, now: now)
        #expect(throttle.admit(user: "carol", known: true, address: "10.0.0.9", now: now) == .check(after: 0))
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
        // alice still waits her 8 s (five failures), from any address.
        guard case .check(let after) = throttle.admit(user: "alice", known: true, address: "198.51.100.7", now: now.addingTimeInterval(3)) else {
            Issue.record("alice's attempt was refused rather than delayed")
            return
        }
        #expect(after > 4.9)
    }

    /// IPv6 addresses of one /64 are one address.
    @Test func anIPv6SlashSixtyFourIsOneAddress() {
        #expect(LoginThrottle.addressKey("2001:db8:1:2::1") == LoginThrottle.addressKey("2001:db8:1:2:ffff::9"))
        #expect(LoginThrottle.addressKey("2001:db8:1:2::1") != LoginThrottle.addressKey("2001:db8:1:3::1"))
    }

    /// An unknown user's check costs what the file's hashes cost.
    @Test func theDecoyFollowsTheFilesCost() {
        #expect(PasswordFile.commonCost(["$2y$05$abc", "$2y$05$def", "$2b$12$ghi"]) == 5)
        #expect(PasswordFile.commonCost([]) == 12)
    }
}
